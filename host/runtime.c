/* Being written. */
typedef int shmh_placeholder;
