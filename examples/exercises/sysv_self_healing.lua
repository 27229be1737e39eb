-- Exercise (chapter 77): a reader before the writer fails with ENOENT; a writer killed before IPC_RMID leaves a stale segment (nattch 0); the next writer heals it
--
-- usage: shmhost exercises/sysv_self_healing
--
-- The chapter's robustness exercise, with its bundled writer and reader:
--   1. the reader runs first: shmget without IPC_CREAT fails, "No such file or directory";
--   2. the writer is interrupted (SIGINT, the chapter's Ctrl+C): shmhost catches it and still
--      removes the segment, so nothing is left;
--   3. the writer is killed with SIGKILL (a crash: no handler runs) before IPC_RMID: the
--      segment stays, attached by nobody (nattch 0), as `ipcs -m` and `shmhost ls` show;
--   4. the next writer's shmget(IPC_CREAT|IPC_EXCL) fails with EEXIST; it sees nobody uses the
--      old segment, removes it with a warning and creates its own; a reader then works.
local shm = require "shmhost"
local E = require "exercise"

-- The kernel's line for the segment with this key, from /proc/sysvipc/shm (looking there
-- does not attach, so it does not change nattch).
local function sysv_entry(key)
  local f = io.open("/proc/sysvipc/shm")
  if not f then return nil end
  local cols = {}
  for c in f:read("l"):gmatch("%S+") do cols[#cols + 1] = c end
  for line in f:lines() do
    local t, j = {}, 0
    for v in line:gmatch("%S+") do j = j + 1; t[cols[j]] = math.tointeger(tonumber(v)) end
    if t.key == key then f:close(); return t end
  end
  f:close()
end

-- Runs a command and returns its stdout, or nil when it is not installed or fails.
local function output_of(...)
  local ok, c = pcall(E.start, {..., timeout = 10})
  if not ok then return nil end
  c:wait()
  return c.code == 0 and c.stdout or nil
end

local function writer(keyfile)
  return E.shmhost{"sysv_writer", "--keyfile", keyfile, "--wait", "30", timeout = 40}
end

E.run(function()
  local keyfile = E.path("heal.key")
  E.write_file(keyfile, "")
  E.on_exit(function() os.remove(keyfile) end)
  local key = assert(shm.ftok(keyfile, "X"))
  local hex = ("0x%08x"):format(key & 0xffffffff)
  -- Whatever happens below, no segment with this key outlives the exercise.
  E.on_exit(function()
    local left = shm.sysv(key, {readonly = true})
    if left then left:remove(); left:detach() end
  end)
  print(("key file %s, key %s"):format(keyfile, hex))

  -- 1. The reader before any writer.
  local r = E.run_shmhost{"sysv_reader", "--keyfile", keyfile, timeout = 15}
  local msg = r.stderr:match("[^\n]*shmget[^\n]*")
  print("\n1. reader first: " .. r:status() .. ", " .. tostring(msg))
  E.check(r.code == 1 and msg and msg:find("No such file or directory", 1, true),
          "a reader without a writer fails with ENOENT")

  -- 2. Ctrl+C: the runtime's SIGINT handler removes what the writer created.
  local w = writer(keyfile)
  assert(w:wait_for("Waiting for reader", 15), "the writer did not start: " .. w:stderr_text())
  local id = tonumber(w:stdout_text():match("created with ID: (%d+)"))
  w:kill("sigint")
  w:wait()
  local e = sysv_entry(key)
  print(("\n2. writer (segment id %d) interrupted with SIGINT: %s; segment %s"):format(id, w:status(),
        e and "still there" or "removed"))
  E.check(w.code == 130 and not e, "SIGINT ends the writer with 130 and removes the segment")

  -- 3. SIGKILL: nothing runs in the writer any more, IPC_RMID never happens.
  w = writer(keyfile)
  assert(w:wait_for("Waiting for reader", 15), "the writer did not start: " .. w:stderr_text())
  local old = tonumber(w:stdout_text():match("created with ID: (%d+)"))
  w:kill("sigkill")
  w:wait()
  e = sysv_entry(key)
  print(("\n3. writer (segment id %d) killed with SIGKILL: %s; segment %s"):format(old, w:status(),
        e and ("left behind, nattch " .. e.nattch .. ", creator pid " .. e.cpid .. " gone") or "gone"))
  E.check(w.signal == 9 and e and e.shmid == old and e.nattch == 0,
          "a killed writer leaves its segment with nattch 0")
  local ipcs = output_of("ipcs", "-m")
  if ipcs then
    for line in ipcs:gmatch("[^\n]+") do
      if line:lower():find(hex, 1, true) then print("   ipcs -m:     " .. line:gsub("%s+$", "")) end
    end
  end
  local ls = E.run_shmhost{"ls", "--match", hex, timeout = 15}
  for line in ls.stdout:gmatch("[^\n]+") do print("   shmhost ls:  " .. line) end
  E.check(ls.stdout:find(hex, 1, true) ~= nil, "shmhost ls lists the stale segment")

  -- 4. The next writer heals it; a reader gets the message from the new segment.
  w = writer(keyfile)
  assert(w:wait_for("Waiting for reader", 15), "the writer did not start: " .. w:stderr_text())
  local new = tonumber(w:stdout_text():match("created with ID: (%d+)"))
  local warning = w:stderr_text():match("warning:[^\n]*")
  print("\n4. next writer: " .. tostring(warning))
  print(("   old segment id %d, new segment id %s"):format(old, tostring(new)))
  E.check(warning and warning:find("stale segment id " .. old, 1, true), "the writer warns about the stale segment")
  E.check(new and new ~= old, "the writer made a new segment")
  r = E.run_shmhost{"sysv_reader", "--keyfile", keyfile, timeout = 15}
  local got = r.stdout:match('Message received: "([^"]*)"')
  print("   reader: " .. tostring(got))
  E.check(r.code == 0 and got == "Hello from the writer process!", "the reader reads the healed writer's message")
  w:wait()
  E.check(w.code == 0 and not sysv_entry(key), "the healed writer ends and removes its segment (" .. w:status() .. ")")
  return "reader-first fails with ENOENT, a crash leaves a stale segment, the next writer heals it"
end)
