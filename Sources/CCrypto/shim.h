// Umbrella header for the system library libcrypto.
#include <openssl/evp.h>
#include <openssl/crypto.h>
