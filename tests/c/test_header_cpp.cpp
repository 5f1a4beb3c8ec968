// chip.h compiles alone as C++11 (extern "C" guards, enums with int32_t underlying type).
#include "chip.h"

int main() { return chip_abi_version() == CHIP_ABI_VERSION ? 0 : 1; }
