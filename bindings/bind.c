/* Being written. */
typedef int shmh_placeholder_bind;
