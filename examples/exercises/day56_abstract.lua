-- Exercise (Day56): an abstract AF_UNIX control socket: no file to leave behind when the writer is killed, unlike a path socket
--
-- usage: shmhost exercises/day56_abstract
--
-- An abstract socket address starts with a NUL byte: the name lives in the kernel's socket
-- table (listed in /proc/net/unix as "@name"), not in the filesystem. It disappears when the
-- last descriptor of the listening socket is closed, also when its process is killed, so
-- there is no stale socket file to clean up; the price is that it has no file permissions
-- (the writer's peer-uid check is its only guard) and lives in the network namespace.
-- The exercise kills a writer with SIGKILL twice, once with a path socket and once with an
-- abstract one, and shows what each leaves behind. (The segment is left stale both times:
-- /dev/shm objects outlive their creator whatever the socket is.)
local shm = require "shmhost"
local uv = require "luv"
local P = require "day56_procs"

local tag = "day56_abstract_" .. shm.pid()
local name = "/" .. tag
local pass = true
local function check(ok, what)
  print((ok and "ok    " or "FAIL  ") .. what)
  pass = pass and ok
end

-- Whether /proc/net/unix lists the abstract name @NAME (its last column is the address).
local function listed(abstract)
  for line in io.lines("/proc/net/unix") do
    if line:match("%s@(%S+)$") == abstract then return true end
  end
  return false
end

-- Runs a writer and a reader over `where`, kills the writer with SIGKILL, and returns the
-- new writer started afterwards (still running) and its stderr.
local function crash(where, label)
  print("-- " .. label)
  local function start(role)
    local t = {role, "--name", name, stdin = role == "writer", timeout = 20}
    for _, a in ipairs(where) do t[#t + 1] = a end
    return P.start(t)
  end
  local w = start("writer")
  check(w:wait_line("listen success", 5), "the writer listens")
  local r = start("reader")
  check(r:wait_line("epoll wait start", 5), "a reader connected and got its eventfd")
  w:send("-w before the crash")
  check(r:wait_line("^message=before the crash$", 5), "the reader saw the update")
  w:kill("sigkill")
  w:wait(5)
  check(r:wait(3) == 1 and r:stderr():find("writer died", 1, true) ~= nil,
        "after SIGKILL of the writer the reader says it died and exits 1")
  return start
end

-- A path socket: the file stays after the crash.
local path = "/tmp/" .. tag .. ".sock"
local start = crash({"--socket", path}, "path socket " .. path)
local st = uv.fs_lstat(path)
check(st ~= nil and st.type == "socket", "the socket file is left behind: " .. path)
local w2 = start("writer")
check(w2:wait_line("listen success", 5), "a new writer starts")
check(w2:stderr():find("stale socket", 1, true) ~= nil, "it had to replace the stale socket file:")
for l in w2:stderr():gmatch("[^\n]+") do print("      " .. l) end
w2:send("-t")
check(w2:wait(3) == 0 and uv.fs_lstat(path) == nil, "its -t removed the socket file")

-- An abstract socket: nothing is left.
local abstract = tag
start = crash({"--abstract", abstract}, "abstract socket @" .. abstract)
check(not listed(abstract), "/proc/net/unix no longer lists @" .. abstract .. ": the kernel dropped the name")
w2 = start("writer")
check(w2:wait_line("listen success", 5), "a new writer starts")
check(listed(abstract), "/proc/net/unix lists @" .. abstract .. " while it runs")
check(w2:stderr():find("stale socket", 1, true) == nil, "no socket to replace (only the stale segment):")
for l in w2:stderr():gmatch("[^\n]+") do print("      " .. l) end
local r2 = start("reader")
check(r2:wait_line("epoll wait start", 5), "a new reader connects by the abstract name")
w2:send("-w after the crash")
check(r2:wait_line("^counter=2$", 5), "and sees counter=2 from the new writer")
w2:send("-t")
check(r2:wait(2) == 0 and w2:wait(2) == 0, "both end with status 0")
check(not listed(abstract) and uv.fs_stat("/dev/shm" .. name) == nil, "nothing is left")

P.cleanup()
os.remove(path)
os.remove("/dev/shm" .. name)
print(pass and "PASS: a killed writer leaves a stale socket file behind; an abstract name vanishes with it"
           or "FAIL")
os.exit(pass and 0 or 1)
