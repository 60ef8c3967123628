package main

import (
	"vlab/console"
)

// viewerGraphics returns the built-in viewer's drawing mode: the --graphics
// flag, else VLAB_GRAPHICS, else auto (ask the terminal). A bad value is a
// usage error.
func viewerGraphics(flag string) (console.Graphics, error) {
	if flag != "" {
		g, err := console.ParseGraphics(flag)
		if err != nil {
			return g, usageError{err}
		}
		return g, nil
	}
	g, err := console.GraphicsFromEnv()
	if err != nil {
		return g, usageError{err}
	}
	return g, nil
}
