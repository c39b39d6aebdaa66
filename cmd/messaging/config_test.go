package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/guestmsg/messaging/internal/messaging"
)

func TestAttachmentConfig(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(name string) string {
			if name == "DATABASE_URL" {
				return "postgres://localhost/x"
			}
			return kv[name]
		}
	}
	c, err := loadConfig(env(nil))
	if err != nil || !slices.Equal(c.Attachments.Types, messaging.DefaultAttachmentPolicy.Types) || c.Attachments.MaxBytes != 1<<20 {
		t.Errorf("default attachment policy = %+v, %v; want PNG and JPEG, 1 MiB", c.Attachments, err)
	}
	c, err = loadConfig(env(map[string]string{"ATTACHMENT_TYPES": " application/PDF, image/png,image/png", "ATTACHMENT_MAX_BYTES": "500000"}))
	if err != nil || !slices.Equal(c.Attachments.Types, []string{"application/pdf", "image/png"}) || c.Attachments.MaxBytes != 500000 {
		t.Errorf("configured attachment policy = %+v, %v", c.Attachments, err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"ATTACHMENT_TYPES": "image/png,application/msword"}, `ATTACHMENT_TYPES: "application/msword"`},
		{map[string]string{"ATTACHMENT_TYPES": ","}, `ATTACHMENT_TYPES: ""`},
		{map[string]string{"ATTACHMENT_MAX_BYTES": "0"}, "ATTACHMENT_MAX_BYTES: want a whole number"},
		{map[string]string{"ATTACHMENT_MAX_BYTES": "2097152"}, "raise MAX_BODY_BYTES"},
		{map[string]string{"ATTACHMENT_MAX_BYTES": "9223372036854775807"}, "raise MAX_BODY_BYTES"},
	} {
		if _, err := loadConfig(env(tc.env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("loadConfig(%v) = %v, want an error with %q", tc.env, err, tc.want)
		}
	}
	// A larger body limit makes room for larger files.
	if _, err := loadConfig(env(map[string]string{"ATTACHMENT_MAX_BYTES": "2097152", "MAX_BODY_BYTES": "3000000"})); err != nil {
		t.Errorf("loadConfig(2 MiB files, 3 MB bodies) = %v", err)
	}
}
