package main

import (
	"strings"
	"testing"
	"time"

	"github.com/guestmsg/messaging/internal/messaging"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(map[string]string{"DATABASE_URL": "postgres://u:secret@h/db"}))
	if err != nil {
		t.Fatalf("loadConfig = %v", err)
	}
	if c.ListenAddr != ":8080" || c.Windows != messaging.DefaultWindows || c.PurgeInterval != time.Hour ||
		c.MaxBodyBytes != 2<<20 || c.RateLimitPerMinute != 600 || c.AdminToken != "" {
		t.Errorf("loadConfig defaults = %+v", c)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := loadConfig(env(map[string]string{
		"GUEST_WINDOW_DAYS": "-1", "PURGE_INTERVAL": "hourly", "MAX_BODY_BYTES": "0", "ADMIN_TOKEN": "short",
	}))
	if err == nil {
		t.Fatal("loadConfig = nil, want errors")
	}
	for _, name := range []string{"DATABASE_URL", "GUEST_WINDOW_DAYS", "PURGE_INTERVAL", "MAX_BODY_BYTES", "ADMIN_TOKEN"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("loadConfig error does not name %s:\n%v", name, err)
		}
	}
}

func TestLoadConfigZeroPropertySendDays(t *testing.T) {
	c, err := loadConfig(env(map[string]string{"DATABASE_URL": "x", "PROPERTY_SEND_DAYS": "0", "PROPERTY_REPLY_DAYS": "0"}))
	if err != nil || c.Windows.PropertySendDays != 0 || c.Windows.PropertyReplyDays != 0 {
		t.Errorf("loadConfig(0, 0) = %+v, %v", c.Windows, err)
	}
}

func TestMaskDSN(t *testing.T) {
	got := maskDSN("postgres://user:hunter2@db:5432/messaging?sslmode=disable")
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "user") {
		t.Errorf("maskDSN = %q", got)
	}
}
