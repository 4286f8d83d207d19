/* test_error.c: return-code names and texts. */
#include <string.h>

#include "actio.h"
#include "test_util.h"

START_TEST(known_codes_have_names_and_text) {
  ck_assert_str_eq(actio_err_name(ACTIO_EFULL), "EFULL");
  ck_assert_str_eq(actio_strerror(ACTIO_EFULL), "mailbox full");
  ck_assert_str_eq(actio_err_name(ACTIO_ECANCELED), "ECANCELED");
  ck_assert_int_eq(ACTIO_EINVAL, -EINVAL);
  ck_assert_str_eq(actio_err_name(0), "OK");
}
END_TEST

START_TEST(other_errno_values_use_the_system_text) {
  ck_assert_str_eq(actio_err_name(-ENOENT), "ENOENT");
  ck_assert_str_eq(actio_strerror(-ENOENT), "No such file or directory");
  ck_assert_str_eq(actio_strerror(-99999), "unknown error");
  ck_assert_str_eq(actio_err_name(42), "UNKNOWN");
}
END_TEST

int main(void) {
  Suite *s = suite_create("error");
  TCase *tc = tcase_with_timeout("codes", 10);
  tcase_add_test(tc, known_codes_have_names_and_text);
  tcase_add_test(tc, other_errno_values_use_the_system_text);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
