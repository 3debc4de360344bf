package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/goipsec/goipsec/config"
	"github.com/goipsec/goipsec/internal/manpage"
)

// manPages generates goipsec(8) and goipsec.conf(5) from the command tree and the key table.
func manPages(root *cobra.Command) []manpage.Page {
	return []manpage.Page{
		manpage.Command(root, manCommandExtra),
		manpage.Config(config.Keys(), manConfIntro, manConfExtra),
	}
}

func newManCommand(root *cobra.Command) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "man --dir DIR",
		Short:  "Write the manual pages goipsec.8 and goipsec.conf.5 into DIR",
		Hidden: true, // a build step (make man), not an operator's command
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, p := range manPages(root) {
				if err := os.WriteFile(filepath.Join(dir, p.Name), []byte(p.Content), 0o644); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), filepath.Join(dir, p.Name))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to write the pages into")
	return cmd
}

const manCommandExtra = `.SH ENVIRONMENT
.TP
.B GOIPSEC_SOCKET
The control socket the CLI uses when \fB\-\-socket\fR is not given.
.TP
.BR NOTIFY_SOCKET ", " WATCHDOG_USEC ", " JOURNAL_STREAM
Set by systemd: \fBgoipsec run\fR then reports readiness (Type=notify), pets the watchdog and
logs to the journal with its attributes as GOIPSEC_* fields.
.SH FILES
.TP
.I /etc/goipsec/goipsec.conf
The configuration, see \fBgoipsec.conf\fR(5).
.TP
.I /run/goipsec/vici.sock
The control socket (mode 0600); strongSwan's \fBswanctl\fR(8) works against it with
\fB\-\-uri unix:///run/goipsec/vici.sock\fR.
.SH EXIT STATUS
0 on success; 1 on any error, including a configuration that \fBgoipsec check\fR rejects.
.SH SEE ALSO
\fBgoipsec.conf\fR(5), \fBswanctl\fR(8), \fBsystemd.service\fR(5);
docs/operations.md, docs/troubleshooting.md and docs/status-json.md in the source.
`

const manConfIntro = `goipsec reads strongSwan's swanctl.conf syntax: sections "name { ... }" holding settings
"key = value", comments from "#", "include PATTERN" to read more files. Lists are comma
separated, times take the suffixes s, m, h and d. The sections are connections (IKE
connections and their children), secrets (pre-shared keys), manual (manually keyed SAs,
like ip xfrm state) and daemon (goipsec's own settings, which strongSwan keeps in
strongswan.conf).

Every problem of a file is reported at once as FILE:LINE: what was expected; a key goipsec
knows but does not implement says "not supported". goipsec check -c FILE validates a file
without running it.`

const manConfExtra = `.SH EXAMPLE
A site-to-site tunnel; the peer's file mirrors it (local and remote swapped), and only one
side has start_action = start:
.PP
.nf
connections {
    site {
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2
        proposals = aes256gcm16-prfsha256-x25519
        dpd_delay = 30s
        local { auth = psk
                id = gw1.example.org }
        remote { auth = psk
                 id = gw2.example.org }
        children {
            net {
                local_ts = 10.1.0.0/24
                remote_ts = 10.2.0.0/24
                esp_proposals = aes256gcm16
                start_action = start
            }
        }
    }
}
secrets {
    ike-site { id-1 = gw1.example.org
               id-2 = gw2.example.org
               secret = "a long random secret" }
}
.fi
.SH SEE ALSO
\fBgoipsec\fR(8), \fBswanctl.conf\fR(5)
`
