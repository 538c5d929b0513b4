// Command htpasswd prints one line of an htpasswd file for the registry's
// htpasswd auth: the user named by its argument and the bcrypt hash of the
// password read from stdin (so the password is not on a command line).
//
//	echo -n "$PASSWORD" | htpasswd harbor_registry_user >> passwd
//
// Debian's htpasswd is in apache2-utils; this avoids that package and hashes
// with the same golang.org/x/crypto/bcrypt the registry checks with.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] == "" || strings.Contains(os.Args[1], ":") {
		fmt.Fprintln(os.Stderr, "usage: htpasswd USER <password")
		os.Exit(2)
	}
	pw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "htpasswd:", err)
		os.Exit(1)
	}
	h, err := bcrypt.GenerateFromPassword(pw, bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintln(os.Stderr, "htpasswd:", err)
		os.Exit(1)
	}
	fmt.Printf("%s:%s\n", os.Args[1], h)
}
