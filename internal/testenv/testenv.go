// Package testenv gives tests their own databases, key prefixes and ZooKeeper
// roots on the real servers scripts/services.sh starts, and removes them when
// the test ends.
//
// Addresses default to the loopback ports the script uses and can be moved
// with DATASHIFT_PG_ADDR, DATASHIFT_MYSQL_ADDR, DATASHIFT_REDIS_ADDR and
// DATASHIFT_ZK_ADDR. When DATASHIFT_SERVICES=required (set by `make test`), an
// unreachable server fails the test; otherwise the test is skipped, so a bare
// `go test ./...` on a laptop without servers still runs the pure tests.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func addr(env, def string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}

// PostgresAddr, MySQLAddr, RedisAddr and ZooKeeperAddr are host:port.
func PostgresAddr() string  { return addr("DATASHIFT_PG_ADDR", "127.0.0.1:5432") }
func MySQLAddr() string     { return addr("DATASHIFT_MYSQL_ADDR", "127.0.0.1:3306") }
func RedisAddr() string     { return addr("DATASHIFT_REDIS_ADDR", "127.0.0.1:6379") }
func ZooKeeperAddr() string { return addr("DATASHIFT_ZK_ADDR", "127.0.0.1:2191") }

// Required reports whether missing servers fail tests instead of skipping them.
func Required() bool { return os.Getenv("DATASHIFT_SERVICES") == "required" }

// Need skips or fails t when nothing listens on hostport.
func Need(t testing.TB, name, hostport string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostport, 2*time.Second)
	if err == nil {
		c.Close()
		return
	}
	if Required() {
		t.Fatalf("%s at %s is not reachable (run scripts/services.sh): %v", name, hostport, err)
	}
	t.Skipf("%s at %s is not reachable (run scripts/services.sh): %v", name, hostport, err)
}

// UniqueName returns prefix plus a random suffix, usable as a database name.
func UniqueName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// Postgres creates a fresh database and returns its DSN; the database is
// dropped when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	Need(t, "PostgreSQL", PostgresAddr())
	ctx := context.Background()
	admin := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", PostgresAddr())
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	name := UniqueName("dstest")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", PostgresAddr(), name)
}

// MySQL creates a fresh MariaDB/MySQL database and returns its DSN in
// go-sql-driver form; the database is dropped when the test ends.
func MySQL(t testing.TB) string {
	t.Helper()
	Need(t, "MariaDB", MySQLAddr())
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/", MySQLAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := UniqueName("dstest")
	if _, err := db.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/", MySQLAddr()))
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name)
	})
	return fmt.Sprintf("root@tcp(%s)/%s", MySQLAddr(), name)
}

// RedisPrefix returns the Redis address and a key prefix of the test's own;
// keys under the prefix are deleted when the test ends.
func RedisPrefix(t testing.TB) (addr, prefix string) {
	t.Helper()
	Need(t, "Redis", RedisAddr())
	prefix = UniqueName("dstest") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		c := redis.NewClient(&redis.Options{Addr: RedisAddr()})
		defer c.Close()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 1000 {
				c.Del(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	return RedisAddr(), prefix
}

// ZooKeeper returns the server address and a chroot path of the test's own.
func ZooKeeper(t testing.TB) (servers []string, root string) {
	t.Helper()
	Need(t, "ZooKeeper", ZooKeeperAddr())
	return strings.Split(ZooKeeperAddr(), ","), "/" + UniqueName("dstest")
}

// Output collects what a process or command writes while a test reads it.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
