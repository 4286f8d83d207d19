/* error.c: text and names for actio's return codes. */
#include <string.h>

#include "actio/error.h"

const char *actio_strerror(int rc) {
  switch (rc) {
  case 0:
    return "success";
#define ACTIO__ERR_TEXT(name, code, text)                                     \
  case (code):                                                                \
    return text;
    ACTIO_ERR_MAP(ACTIO__ERR_TEXT)
#undef ACTIO__ERR_TEXT
  default:
    break;
  }
  /* Any other negated errno: glibc's description table is static and
   * thread-safe, unlike strerror(). */
  if (rc < 0 && rc > -4000) {
    const char *s = strerrordesc_np(-rc);
    if (s != NULL)
      return s;
  }
  return "unknown error";
}

const char *actio_err_name(int rc) {
  switch (rc) {
  case 0:
    return "OK";
#define ACTIO__ERR_NAME(name, code, text)                                     \
  case (code):                                                                \
    return #name;
    ACTIO_ERR_MAP(ACTIO__ERR_NAME)
#undef ACTIO__ERR_NAME
  default:
    break;
  }
  if (rc < 0 && rc > -4000) {
    const char *s = strerrorname_np(-rc);
    if (s != NULL)
      return s;
  }
  return "UNKNOWN";
}
