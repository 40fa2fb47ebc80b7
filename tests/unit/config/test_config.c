/*
 * test_config.c - the unit binary of config/: runs each group in turn.
 */
int test_cfg_validate_run(void);
int test_cfg_gray_run(void);
int test_cfg_diff_run(void);
int test_cfg_subs_run(void);

int main(void)
{
    int fails = 0;
    fails += test_cfg_validate_run();
    fails += test_cfg_gray_run();
    fails += test_cfg_diff_run();
    fails += test_cfg_subs_run();
    return fails;
}
