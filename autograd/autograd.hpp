/// \file
/// The autograd layer: tensors, ops, the engine and gradcheck.
#pragma once

#include "doctor.hpp"
#include "dtype.hpp"
#include "engine.hpp"
#include "error.hpp"
#include "export.hpp"
#include "function.hpp"
#include "gradcheck.hpp"
#include "random.hpp"
#include "serialize.hpp"
#include "shape.hpp"
#include "tensor.hpp"
#include "unary.hpp"
#include "version.hpp"
