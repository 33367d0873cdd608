/// \file
/// The nn layer: modules (recurrent ones in rnn.hpp), activations (and their registry), losses, initialisers, checkpoints.
#pragma once

#include "activation.hpp"
#include "clip_grad.hpp"
#include "data.hpp"
#include "functional.hpp"
#include "init.hpp"
#include "module.hpp"
#include "rnn.hpp"
