#pragma once

#include "comm/world.h"

namespace convoy::test {
extern comm::World* g_world;  // set by tests/comm/mpi_main.cpp
}  // namespace convoy::test
