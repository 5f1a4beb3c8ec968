/* chip.h compiles alone as C99. */
#include "chip.h"

int main(void) { return chip_abi_version() == CHIP_ABI_VERSION ? 0 : 1; }
