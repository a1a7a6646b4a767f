#!/usr/bin/env bash
# The main job. Today: set up, build, and time training steps of ResNet-20 on 28x28 inputs on this
# machine's cores (the trainer, which will train Fashion-MNIST here, is the next issue).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
build/convoy models
build/convoy bench train --model resnet20 --batch 128 --image-size 28 --channels 1 --classes 10 --steps 20
