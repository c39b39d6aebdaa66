package main

import (
	"strings"
	"testing"
	"time"
)

func TestConfigTimeoutsAndLimits(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	cfg, err := loadConfig(env(map[string]string{"DATABASE_URL": "postgres://x"}))
	if err != nil {
		t.Fatalf("loadConfig(defaults) = %v", err)
	}
	if cfg.RateLimitPerMinute != 600 || cfg.ReadHeaderTimeout != 5*time.Second || cfg.ReadTimeout != 30*time.Second ||
		cfg.WriteTimeout != 30*time.Second || cfg.IdleTimeout != 120*time.Second || cfg.MaxHeaderBytes != 64<<10 ||
		cfg.RequestTimeout != 10*time.Second {
		t.Errorf("defaults = %+v", cfg)
	}
	cfg, err = loadConfig(env(map[string]string{"DATABASE_URL": "postgres://x", "RATE_LIMIT_PER_MINUTE": "0",
		"READ_HEADER_TIMEOUT": "500ms", "MAX_HEADER_BYTES": "4096"}))
	if err != nil || cfg.RateLimitPerMinute != 0 || cfg.ReadHeaderTimeout != 500*time.Millisecond || cfg.MaxHeaderBytes != 4096 {
		t.Errorf("loadConfig(set) = %+v, %v", cfg, err)
	}
	_, err = loadConfig(env(map[string]string{"DATABASE_URL": "postgres://x", "RATE_LIMIT_PER_MINUTE": "-1",
		"IDLE_TIMEOUT": "soon", "MAX_HEADER_BYTES": "10", "REQUEST_TIMEOUT": "40s"}))
	for _, name := range []string{"RATE_LIMIT_PER_MINUTE", "IDLE_TIMEOUT", "MAX_HEADER_BYTES", "REQUEST_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("loadConfig(bad values) = %v, want a problem with %s", err, name)
		}
	}
}
