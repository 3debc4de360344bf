package testnet

// sysSetns is setns(2)'s system call number; the standard syscall package does not export it.
const sysSetns = 268
