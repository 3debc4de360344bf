//go:build linux && (mips64 || mips64le)

package testnet

// sysSetns is setns(2)'s system call number (n64 ABI); the standard syscall package does not export it.
const sysSetns = 5303
