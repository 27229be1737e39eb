-- The mutex exercises run as a user runs them (`shmhost exercises/NAME`), each checked for its
-- PASS line, its exit status and what it shows.
local T = require "testlib"

T.test("exercises/owner_died", function()
  local r = T.shmhost{"exercises/owner_died", timeout = 60}
  T.eq(r.code, 0, r.stdout .. r.stderr)
  T.ok(r.stdout:find("lock() -> true, owner-died", 1, true), r.stdout)
  T.ok(r.stdout:find("next lock() -> true, nil", 1, true), r.stdout)
  T.ok(r.stdout:find("lock(1) -> nil, timeout", 1, true), r.stdout)
  T.ok(r.stdout:find("\nPASS", 1, true), r.stdout)
end)

T.test("exercises/mutex_lost_updates", function()
  local r = T.shmhost{"exercises/mutex_lost_updates", "3", "3000", timeout = 120}
  T.eq(r.code, 0, r.stdout .. r.stderr)
  T.ok(r.stdout:find("with the mutex:    counter 9000, 0 updates lost", 1, true), r.stdout)
  T.ok(r.stdout:find("without the mutex: counter %d+, %d+ updates lost"), r.stdout)
  T.ok(r.stdout:find("\nPASS", 1, true), r.stdout)
end)

T.test("exercises/mutex_lost_updates refuses bad arguments", function()
  local r = T.shmhost{"exercises/mutex_lost_updates", "1", timeout = 20}
  T.eq(r.code, 2)
  T.ok(r.stderr:find("usage:", 1, true), r.stderr)
end)

T.done()
