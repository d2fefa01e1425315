// Which ISA unit's kernels run: the best one this CPU supports, or the one
// SOFTMAXLIB_ISA names (never better than the CPU allows), or the one set_isa
// chose, process-wide.
#pragma once

#include <string>
#include <vector>

#include "family_table.h"
#include "kernel_table.h"

namespace softmaxlib {
namespace driver {

const KernelTable* current_table();
// The family table of the unit current_table() comes from.
const FamilyTable* current_family_table();
std::vector<std::string> compiled_isas();  // best first
std::vector<std::string> supported_isas();
// Selects an ISA unit process-wide, returns the previous one's name; throws
// std::invalid_argument for an unknown or unsupported name.
std::string set_isa(const std::string& name);

}  // namespace driver
}  // namespace softmaxlib
