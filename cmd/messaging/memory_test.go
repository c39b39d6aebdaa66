package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
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
		bin = buildBinary(t)
	}
	svc := startService(t, bin, "", "DATABASE_URL="+pgtest.DSN(t), "RATE_LIMIT_PER_MINUTE=0")
	svc.waitReady(30 * time.Second)
	st := newSetup(t, svc, 1)
	conversation, guest := st.conversations[0], st.guest

	size := int(messaging.DefaultAttachmentPolicy.MaxBytes)
	files := make([]api.UploadRequest, concurrency)
	for i := range files {
		b := make([]byte, size)
		_, _ = rand.Read(b)
		copy(b, "\x89PNG\r\n\x1a\n")
		files[i] = api.UploadRequest{Conversation: conversation, Accommodation: st.accommodation, FileName: fmt.Sprintf("f%d.png", i),
			FileType: "image/png", FileSize: int64(size), FileContent: base64.StdEncoding.EncodeToString(b)}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	guest.HTTP = hc

	before := procStatus(t, svc.cmd.Process.Pid)
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
	afterUploads := procStatus(t, svc.cmd.Process.Pid)
	for range rounds {
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				if _, err := guest.Download(ctx, api.AttachmentRequest{Conversation: conversation, Accommodation: st.accommodation, Attachment: ids[i]}); err != nil {
					t.Errorf("Download() = %v", err)
				}
			})
		}
		wg.Wait()
	}
	afterDownloads := procStatus(t, svc.cmd.Process.Pid)

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
