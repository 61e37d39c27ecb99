package notify

import "testing"

func TestWithApplicationName(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"", "application_name=app"},
		{"host=/tmp port=5432", "host=/tmp port=5432 application_name=app"},
		{"host=/tmp application_name=x", "host=/tmp application_name=x application_name=app"},
		{"postgres://u:p@h:5432/db", "postgres://u:p@h:5432/db?application_name=app"},
		{"postgresql://h/db?sslmode=disable", "postgresql://h/db?application_name=app&sslmode=disable"},
		{"postgres://h/db?application_name=x&sslmode=disable", "postgres://h/db?application_name=app&sslmode=disable"},
	} {
		if got := withApplicationName(tc.dsn, "app"); got != tc.want {
			t.Errorf("withApplicationName(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
	if got, want := withApplicationName("host=h", `it's a\b`), `host=h application_name='it\'s a\\b'`; got != want {
		t.Errorf("quoting: got %q, want %q", got, want)
	}
}
