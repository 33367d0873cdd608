/// \file
/// chainrule: a reverse-mode automatic differentiation engine. One include for everything.
#pragma once

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"
