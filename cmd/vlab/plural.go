package main

import "fmt"

// count says n things in English: "1 CPU", "2 CPUs", "0 disks". plural is
// the word for more than one; one for exactly one.
func count(n int, one, plural string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, plural)
}
