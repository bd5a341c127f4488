package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// process is one run of mariadbd, from spawn to exit.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // exit error of cmd.Wait; read only after done is closed
}

// spawn starts mariadbd with the option file cnf, its standard output and
// error appended to errLog. The process gets its own process group, so that
// Kill can signal it and whatever it may fork, and a parent-death signal of
// SIGKILL, so that a test binary that dies does not leave servers behind.
func spawn(wrapper []string, mariadbd, cnf, errLog string, detached bool) (*process, error) {
	logFile, err := os.OpenFile(errLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// --defaults-file must be the first option.
	argv := append(append([]string(nil), wrapper...), mariadbd, "--defaults-file="+cnf)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if detached {
		cmd.SysProcAttr.Pdeathsig = 0
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process, or to its whole process group if group.
// A process that has already exited is not an error.
func (p *process) signal(sig syscall.Signal, group bool) error {
	pid := p.cmd.Process.Pid
	if group {
		pid = -pid
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("send %v to %d: %w", sig, pid, err)
	}
	return nil
}

// kill sends SIGKILL to the process group and waits for the process to exit.
func (p *process) kill() error {
	err := p.signal(syscall.SIGKILL, true)
	if err == nil {
		<-p.done
	}
	return err
}
