//go:build !unix

package pgtest

import (
	"errors"
	"io/fs"
	"syscall"
)

// credential stands for the OS user a child process runs as; unused here.
type credential struct{ Uid, Gid uint32 }

// errUnsupported: throwaway servers need a Unix-like system.
var errUnsupported = errors.New("estest: starting a throwaway PostgreSQL (or PgBouncer) needs " +
	"Linux, macOS or another Unix; on this system set ES_TEST_DATABASE_URL to a database the " +
	"tests may use")

func runAsCredential() (*credential, error) { return nil, errUnsupported }

func sysProcAttr(*credential) *syscall.SysProcAttr { return nil }

func fileOwner(fs.FileInfo) (uint32, bool) { return 0, false }

func signalPID(int, syscall.Signal) error { return errUnsupported }

func processAlive(int) bool { return false }
