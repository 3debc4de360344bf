//go:build linux && (mips || mipsle)

package testnet

// sysSetns is setns(2)'s system call number (o32 ABI); the standard syscall package does not export it.
const sysSetns = 4344
