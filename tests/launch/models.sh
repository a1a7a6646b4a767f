#!/usr/bin/env bash
# `convoy models` lists the whole zoo with torchvision's parameter counts (the issue's list), GoogLeNet's
# auxiliary-classifier variant included.
source "$(dirname "$0")/common.sh"
"$CONVOY" models > "$WORK/models"
cat "$WORK/models"
while read -r name count; do
  grep -Eq "^ *${name//+/\\+} +${count} " "$WORK/models" || fail "convoy models does not show $name with $count parameters"
done <<'COUNTS'
lenet5 61,706
alexnet 61,100,840
vgg11 132,863,336
vgg11_bn 132,868,840
vgg13 133,047,848
vgg13_bn 133,053,736
vgg16 138,357,544
vgg16_bn 138,365,992
vgg19 143,667,240
vgg19_bn 143,678,248
nin 1,992,166
googlenet 6,624,904
  +aux 13,004,888
resnet18 11,689,512
resnet50 25,557,032
densenet121 7,978,856
densenet161 28,681,000
densenet169 14,149,480
densenet201 20,013,928
COUNTS
echo "every count shown"
