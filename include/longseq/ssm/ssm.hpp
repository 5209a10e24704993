// Umbrella header of the SSM family: HiPPO, kernel parameterizations, discretizations, SSMConv, recurrence.
#pragma once
#include "conv_kernel.hpp"
#include "discretization.hpp"
#include "dlr.hpp"
#include "dss.hpp"
#include "hippo.hpp"
#include "kernel.hpp"
#include "recurrent.hpp"
#include "s4.hpp"
#include "s4d.hpp"
#include "ssm_conv.hpp"
#include "vandermonde.hpp"
