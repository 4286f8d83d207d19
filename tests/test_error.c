/* test_error.c: return-code names and texts. */
#include <string.h>

#include "actio.h"
#include "test_util.h"

START_TEST(known_codes_have_names_and_text) {
  ck_assert_str_eq(actio_err_name(ACTIO_EFULL), "EFULL");
  ck_assert_str_eq(actio_strerror(ACTIO_EFULL), "mailbox or queue full");
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
  /* In the errno range, but no errno the system knows. */
  ck_assert_str_eq(actio_strerror(-3999), "unknown error");
  ck_assert_str_eq(actio_err_name(-3999), "UNKNOWN");
  ck_assert_str_eq(actio_strerror(42), "unknown error");
}
END_TEST

/* Every code of the table has its own name and text, and each call returns
 * what the table says for it (a case missing from either switch would give
 * the system's text or "UNKNOWN"). */
START_TEST(every_code_of_the_table) {
  static const struct {
    int code;
    const char *name, *text;
  } table[] = {
#define ROW(name, code, text) {code, #name, text},
      ACTIO_ERR_MAP(ROW)
#undef ROW
  };
  size_t n = sizeof table / sizeof *table;
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_lt(table[i].code, 0);
    ck_assert_str_eq(actio_err_name(table[i].code), table[i].name);
    ck_assert_str_eq(actio_strerror(table[i].code), table[i].text);
    for (size_t j = 0; j < i; j++) {
      ck_assert_int_ne(table[j].code, table[i].code);
      ck_assert_str_ne(table[j].name, table[i].name);
    }
  }
  ck_assert_str_eq(actio_strerror(0), "success");
}
END_TEST

int main(void) {
  Suite *s = suite_create("error");
  TCase *tc = tcase_with_timeout("codes", 10);
  tcase_add_test(tc, known_codes_have_names_and_text);
  tcase_add_test(tc, other_errno_values_use_the_system_text);
  tcase_add_test(tc, every_code_of_the_table);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
