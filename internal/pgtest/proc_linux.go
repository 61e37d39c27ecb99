package pgtest

import "syscall"

// sysProcAttr runs a child as cred, in its own process group (a terminal's Ctrl-C goes to the
// launcher, which decides), killed when the thread that started it exits: startChild keeps that
// thread alive for as long as the child runs, so this fires only when our process dies.
func sysProcAttr(cred *credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
