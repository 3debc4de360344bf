// Package interop holds goipsec's end-to-end tests against the reference peer, strongSwan 5.9.8
// (kernel-libipsec, its userspace ESP), and goipsec against itself, each side in its own network
// namespace. The tests run the real goipsec binary and the real charon; they need root and fail
// (never skip) when something is missing, unless -short is given.
package interop
