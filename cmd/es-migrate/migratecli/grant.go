package migratecli

import (
	"context"
	"fmt"
)

func cmdGrant(ctx context.Context, c *command) error {
	return fmt.Errorf("not implemented yet")
}
