//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs a child as cred, in its own process group (a terminal's Ctrl-C goes to the
// launcher, which decides). There is no parent-death signal here: a child outlives a launcher
// that is killed, and the next launcher removes it (see removeStale).
func sysProcAttr(cred *credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
