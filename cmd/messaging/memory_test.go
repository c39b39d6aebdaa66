package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// TestUploadMemory measures the peak resident memory (VmHWM) of the built server while it takes
// concurrent uploads of the maximum size, and then as many concurrent downloads of them. It is a
// measurement, not a unit test: it runs only with ATTACHMENT_MEMORY_TEST=1, e.g.
//
//	ATTACHMENT_MEMORY_TEST=1 go test -run TestUploadMemory -v ./cmd/messaging
//
// ATTACHMENT_MEMORY_CONCURRENCY (default 16) and ATTACHMENT_MEMORY_ROUNDS (default 4) tune it;
// ATTACHMENT_MEMORY_BIN names a binary to measure instead of building this one.
func TestUploadMemory(t *testing.T) {
	if os.Getenv("ATTACHMENT_MEMORY_TEST") != "1" {
		t.Skip("a measurement: set ATTACHMENT_MEMORY_TEST=1 to run it")
	}
	concurrency := envInt(t, "ATTACHMENT_MEMORY_CONCURRENCY", 16)
	rounds := envInt(t, "ATTACHMENT_MEMORY_ROUNDS", 4)
	ctx := context.Background()

	bin := os.Getenv("ATTACHMENT_MEMORY_BIN") // a binary built before, to compare builds
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "messaging")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const token = "memory-test-admin-token"
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+pgtest.DSN(t), "LISTEN_ADDR="+addr, "ADMIN_TOKEN="+token)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	base := "http://" + addr
	waitReady(t, base+"/readyz")

	admin := &api.AdminClient{BaseURL: base, Token: token}
	guest := partnerClient(t, admin, base, "guest")
	property := partnerClient(t, admin, base, "property")
	if _, err := admin.PutAccommodation(ctx, "1", api.AccommodationRequest{Partner: property.AffiliateID}); err != nil {
		t.Fatal(err)
	}
	guestID := guest.AffiliateID
	res, err := admin.PutReservation(ctx, "1", api.ReservationRequest{Accommodation: "1", GuestPartner: &guestID,
		Checkin: time.Now().Format("2006-01-02"), Checkout: time.Now().AddDate(0, 0, 3).Format("2006-01-02")})
	if err != nil {
		t.Fatal(err)
	}

	size := int(messaging.DefaultAttachmentPolicy.MaxBytes)
	files := make([]api.UploadRequest, concurrency)
	for i := range files {
		b := make([]byte, size)
		_, _ = rand.Read(b)
		copy(b, "\x89PNG\r\n\x1a\n")
		files[i] = api.UploadRequest{Conversation: res.Conversation, Accommodation: "1", FileName: fmt.Sprintf("f%d.png", i),
			FileType: "image/png", FileSize: int64(size), FileContent: base64.StdEncoding.EncodeToString(b)}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	guest.HTTP = hc

	before := procStatus(t, cmd.Process.Pid)
	ids := make([]string, concurrency)
	var mu sync.Mutex
	var durations []time.Duration
	for range rounds {
		var wg sync.WaitGroup
		for i := range files {
			wg.Go(func() {
				began := time.Now()
				id, err := guest.Upload(ctx, files[i])
				if err != nil {
					t.Errorf("Upload() = %v", err)
				}
				mu.Lock()
				ids[i] = id
				durations = append(durations, time.Since(began))
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	afterUploads := procStatus(t, cmd.Process.Pid)
	for range rounds {
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				if _, err := guest.Download(ctx, api.AttachmentRequest{Conversation: res.Conversation, Accommodation: "1", Attachment: ids[i]}); err != nil {
					t.Errorf("Download() = %v", err)
				}
			})
		}
		wg.Wait()
	}
	afterDownloads := procStatus(t, cmd.Process.Pid)

	mib := func(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }
	perUpload := float64(afterUploads["VmHWM"]-before["VmHWM"]) * 1024 / float64(concurrency) / float64(size)
	t.Logf("%d rounds of %d concurrent uploads of %d bytes (base64 body %d bytes)", rounds, concurrency, size, len(files[0].FileContent))
	t.Logf("VmHWM before uploads: %s (VmRSS %s)", mib(before["VmHWM"]), mib(before["VmRSS"]))
	t.Logf("VmHWM after uploads: %s (VmRSS %s): peak growth %s, %.1f× the file size per concurrent upload",
		mib(afterUploads["VmHWM"]), mib(afterUploads["VmRSS"]), mib(afterUploads["VmHWM"]-before["VmHWM"]), perUpload)
	t.Logf("VmHWM after %d rounds of %d concurrent downloads: %s (VmRSS %s)", rounds, concurrency, mib(afterDownloads["VmHWM"]), mib(afterDownloads["VmRSS"]))
	var total time.Duration
	for _, d := range durations {
		total += d
	}
	t.Logf("mean upload latency under this load: %v", total/time.Duration(len(durations)))
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s: want a positive whole number, got %q", name, v)
	}
	return n
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not become ready", url)
}

func partnerClient(t *testing.T, admin *api.AdminClient, base, kind string) *api.Client {
	t.Helper()
	ctx := context.Background()
	p, err := admin.CreatePartner(ctx, api.PartnerRequest{Kind: kind, Name: kind})
	if err != nil {
		t.Fatal(err)
	}
	k, err := admin.CreateKey(ctx, p.AffiliateID, "memory")
	if err != nil {
		t.Fatal(err)
	}
	return &api.Client{BaseURL: base, AffiliateID: p.AffiliateID, APIKey: k.APIKey}
}

// procStatus returns the kB figures of /proc/<pid>/status, e.g. "VmHWM" (peak resident set).
func procStatus(t *testing.T, pid int) map[string]int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
			out[name] = n
		}
	}
	return out
}
