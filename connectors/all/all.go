// Package all imports every connector, so that importing it makes every
// source and sink type available by name. The binary imports it; a program
// that wants fewer connectors imports just those.
package all

import (
	_ "github.com/datashift/datashift/connectors/csv"
	_ "github.com/datashift/datashift/connectors/mysql"
	_ "github.com/datashift/datashift/connectors/parquet"
	_ "github.com/datashift/datashift/connectors/postgres"
	_ "github.com/datashift/datashift/connectors/redis"
	_ "github.com/datashift/datashift/connectors/sqlite"
)
