package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// The tests of this package drive the built binary as a child process: crashes, database
// outages, shutdown under load, slow clients and logs.

func TestMain(m *testing.M) { pgtest.Main(m) }

const testAdminToken = "process-test-admin-token-0123456789"

// buildBinary builds the service into a temporary directory and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "messaging")
	out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return path
}

// logBuffer collects a child's output; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// service is one run of the binary.
type service struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string // host:port
	url  string
	logs *logBuffer
	done chan struct{}
	err  error // the exit status, once done is closed
}

// startService runs bin with env (and nothing else of the test's environment) on addr, a free
// port when empty, and waits until /healthz answers. It is killed when the test ends if it is
// still running.
func startService(t *testing.T, bin, addr string, env ...string) *service {
	t.Helper()
	if addr == "" {
		port, err := pgtest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr = "127.0.0.1:" + strconv.Itoa(port)
	}
	s := &service{t: t, addr: addr, url: "http://" + addr, logs: &logBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Env = append([]string{"LISTEN_ADDR=" + addr, "ADMIN_TOKEN=" + testAdminToken}, env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("logs of the service on %s:\n%s", addr, s.logs)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.done:
			t.Fatalf("the service exited while starting: %v\n%s", s.err, s.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not answer /healthz within 30 s:\n%s", s.logs)
		}
	}
}

// waitReady waits up to timeout for /readyz to answer 200.
func (s *service) waitReady(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if s.status(http.MethodGet, "/readyz") == http.StatusOK {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("/readyz did not answer 200 within %v", timeout)
}

// status sends a request without a body and returns the status, or 0 when none came.
func (s *service) status(method, path string) int {
	req, _ := http.NewRequest(method, s.url+path, nil)
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// signal sends sig to the service.
func (s *service) signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// wait waits up to timeout for the service to exit and returns its exit status.
func (s *service) wait(timeout time.Duration) error {
	s.t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(timeout):
		s.t.Fatalf("the service did not exit within %v", timeout)
		return nil
	}
}

// kill ends the service with SIGKILL.
func (s *service) kill() {
	s.t.Helper()
	s.signal(syscall.SIGKILL)
	s.wait(10 * time.Second)
}

// setup is a property partner, a guest partner and n reservations attached to the guest at an
// accommodation of the property, registered through the admin API.
type setup struct {
	property, guest *api.Client
	accommodation   string
	reservations    []string
	conversations   []string // of the reservations, in the same order
}

func newSetup(t *testing.T, s *service, n int) setup {
	t.Helper()
	ctx := context.Background()
	admin := &api.AdminClient{BaseURL: s.url, Token: testAdminToken}
	client := func(kind string) *api.Client {
		p, err := admin.CreatePartner(ctx, api.PartnerRequest{Kind: kind, Name: kind})
		if err != nil {
			t.Fatalf("CreatePartner: %v", err)
		}
		k, err := admin.CreateKey(ctx, p.AffiliateID, "test")
		if err != nil {
			t.Fatalf("CreateKey: %v", err)
		}
		return &api.Client{BaseURL: s.url, AffiliateID: p.AffiliateID, APIKey: k.APIKey,
			HTTP: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	}
	st := setup{property: client("property"), guest: client("guest"), accommodation: "7001"}
	if _, err := admin.PutAccommodation(ctx, st.accommodation, api.AccommodationRequest{Partner: st.property.AffiliateID, Name: "Sea View"}); err != nil {
		t.Fatalf("PutAccommodation: %v", err)
	}
	checkin := time.Now().UTC().Format("2006-01-02")
	checkout := time.Now().UTC().Add(72 * time.Hour).Format("2006-01-02")
	for i := range n {
		id := fmt.Sprintf("R%d", i)
		r, err := admin.PutReservation(ctx, id, api.ReservationRequest{Accommodation: st.accommodation,
			GuestPartner: &st.guest.AffiliateID, GuestName: "Ada", Checkin: checkin, Checkout: checkout})
		if err != nil {
			t.Fatalf("PutReservation: %v", err)
		}
		st.reservations = append(st.reservations, id)
		st.conversations = append(st.conversations, r.Conversation)
	}
	return st
}

// refused reports whether nothing accepts connections on addr.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// load runs fn(w, i) for i = 0, 1, 2, … in each of workers goroutines until stop is called,
// which returns once every goroutine has finished its current call.
func load(workers int, fn func(w, i int)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				fn(w, i)
			}
		})
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// holdLock runs lockSQL in a transaction of its own and returns its rollback.
func holdLock(t *testing.T, dsn, lockSQL string) (release func()) {
	t.Helper()
	conn := sqlx.MustConnect("postgres", dsn)
	tx := conn.MustBegin()
	tx.MustExec(lockSQL)
	done := false
	release = func() {
		if !done {
			done = true
			tx.Rollback()
			conn.Close()
		}
	}
	t.Cleanup(release)
	return release
}
