package pgdsn

import (
	"testing"

	"github.com/lib/pq"
	"github.com/matryer/is"
)

// Multi-host strings with target_session_attrs=read-write (failover: the pool finds the
// primary among the hosts) keep every host and the attribute through ForLibPQ and Set, in URL
// and keyword/value form, as both drivers read them.
func TestMultiHost(t *testing.T) {
	clearEnv(t)
	is := is.New(t)
	for _, in := range []string{
		"postgres://app@db1:5432,db2:5433/app?target_session_attrs=read-write",
		"host=db1,db2 port=5432,5433 user=app dbname=app target_session_attrs=read-write",
	} {
		out, err := ForLibPQ(in)
		is.NoErr(err)
		out = Set(out, map[string]string{"application_name": "listener"})
		pgxCfg, err := Parse(out)
		is.NoErr(err)
		is.Equal(pgxCfg.Host, "db1")
		is.Equal(pgxCfg.RuntimeParams["application_name"], "listener")
		hosts := map[string]uint16{pgxCfg.Host: pgxCfg.Port}
		for _, f := range pgxCfg.Fallbacks {
			hosts[f.Host] = f.Port
		}
		is.Equal(hosts, map[string]uint16{"db1": 5432, "db2": 5433})
		is.True(pgxCfg.ValidateConnect != nil) // read-write is checked on connect

		pqCfg, err := pq.NewConfig(out)
		is.NoErr(err)
		is.Equal(pqCfg.Host, "db1")
		is.Equal(pqCfg.Port, uint16(5432))
		is.Equal(len(pqCfg.Multi), 1)
		is.Equal(pqCfg.Multi[0].Host, "db2")
		is.Equal(pqCfg.Multi[0].Port, uint16(5433))
		is.Equal(pqCfg.TargetSessionAttrs, pq.TargetSessionAttrsReadWrite)
		is.Equal(pqCfg.SSLMode, pq.SSLModePrefer)
	}
}
