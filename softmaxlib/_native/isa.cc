// ISA choice (isa.h): cpuid through the compiler's builtins.
#include "isa.h"

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace softmaxlib {
namespace driver {
namespace {

struct IsaEntry {
  const char* name;
  const KernelTable* (*table)();
  const FamilyTable* (*family_table)();
  bool (*supported)();
};

bool always() { return true; }
#if defined(SOFTMAXLIB_X86)
bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
bool has_avx512f() { return __builtin_cpu_supports("avx512f") && has_avx2(); }
#endif

// Best first.
const IsaEntry kIsas[] = {
#if defined(SOFTMAXLIB_X86)
    {"avx512f", &avx512f::table, &avx512f::family_table, &has_avx512f},
    {"avx2", &avx2::table, &avx2::family_table, &has_avx2},
#endif
    {"baseline", &baseline::table, &baseline::family_table, &always},
};

std::atomic<const KernelTable*> g_table{nullptr};

// ISA names are case-insensitive ("AVX2" is "avx2").
const IsaEntry* find_isa(const std::string& name) {
  for (const auto& e : kIsas) {
    const std::string canonical = e.name;
    bool same = name.size() == canonical.size();
    for (std::size_t i = 0; same && i < name.size(); ++i)
      same = std::tolower(static_cast<unsigned char>(name[i])) == canonical[i];
    if (same) return &e;
  }
  return nullptr;
}

const KernelTable* best_table(const char* at_most) {
  // The best supported unit, no better than `at_most` when given.
  bool allowed = (at_most == nullptr);
  for (const auto& e : kIsas) {
    if (!allowed && std::string(at_most) == e.name) allowed = true;
    if (allowed && e.supported()) return e.table();
  }
  return baseline::table();
}

const KernelTable* table_now() {
  const KernelTable* t = g_table.load(std::memory_order_acquire);
  if (t == nullptr) {
    // An unknown name is ignored here; the Python loader warns about it.
    const char* env = std::getenv("SOFTMAXLIB_ISA");
    const IsaEntry* asked = (env && *env) ? find_isa(env) : nullptr;
    t = best_table(asked ? asked->name : nullptr);
    g_table.store(t, std::memory_order_release);
  }
  return t;
}

}  // namespace

const KernelTable* current_table() { return table_now(); }

const FamilyTable* current_family_table() {
  const KernelTable* t = table_now();
  for (const auto& e : kIsas) if (t == e.table()) return e.family_table();
  return baseline::family_table();
}

std::vector<std::string> compiled_isas() {
  std::vector<std::string> v;
  for (const auto& e : kIsas) v.push_back(e.name);
  return v;
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> v;
  for (const auto& e : kIsas) if (e.supported()) v.push_back(e.name);
  return v;
}

std::string set_isa(const std::string& name) {
  const IsaEntry* e = find_isa(name);
  if (e == nullptr) throw std::invalid_argument("unknown ISA '" + name + "'");
  if (!e->supported()) throw std::invalid_argument("ISA '" + name + "' is not supported by this CPU");
  std::string prev = table_now()->isa;
  g_table.store(e->table());
  return prev;
}

}  // namespace driver
}  // namespace softmaxlib
