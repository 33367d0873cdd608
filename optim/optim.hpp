/// \file
/// The optim layer: optimizers and learning-rate schedulers.
#pragma once

#include "optimizer.hpp"
#include "scheduler.hpp"
