-- Exercise (Day56): SOCK_SEQPACKET instead of SOCK_STREAM for the control socket: message boundaries kept, then the lab's session over it
--
-- usage: shmhost exercises/day56_seqpacket
--
-- A stream socket is a byte stream: three sends may arrive as one recv, and a peer must frame
-- its messages itself. SOCK_SEQPACKET is connection-oriented like a stream but keeps each send
-- a message of its own, like a datagram, so a control protocol needs no framing (and a reader
-- of the wrong type is refused at connect time with EPROTOTYPE). This exercise shows the
-- difference on one connection of each type, then runs the writer and a reader with
-- --seqpacket, and shows a stream reader refused by a seqpacket writer.
local shm = require "shmhost"
local P = require "day56_procs"

local tag = "day56_seqpacket_" .. shm.pid()
local pass = true
local function check(ok, what)
  print((ok and "ok    " or "FAIL  ") .. what)
  pass = pass and ok
end

-- Three sends, then one recv after they have all arrived: how many messages come out?
local function boundaries(type)
  local path = "/tmp/" .. tag .. "_" .. type .. ".sock"
  local srv = assert(shm.unix.listen{path = path, type = type})
  local a = assert(shm.unix.connect{path = path, type = type})
  local b = assert(srv:accept())
  for _, m in ipairs{"-w one", "-w two", "-s"} do assert(a:send(m)) end
  shm.sleep(0.05)
  local got = {}
  for _ = 1, 3 do
    local s = assert(b:recv())
    got[#got + 1] = s
    if #table.concat(got) == #"-w one-w two-s" then break end
  end
  a:close() b:close() srv:close()
  local shown = {}
  for i, s in ipairs(got) do shown[i] = ("%q"):format(s) end
  print(("%-9s 3 sends -> %d recv: %s"):format(type, #got, table.concat(shown, ", ")))
  return got
end

local stream = boundaries("stream")
local seq = boundaries("seqpacket")
check(#seq == 3 and seq[1] == "-w one" and seq[2] == "-w two" and seq[3] == "-s",
      "seqpacket kept the three messages apart")
print(#stream == 1 and "          the stream joined them: a stream protocol must frame its messages"
                    or "          (the stream happened to keep them apart this time; nothing promises it)")

-- The lab's session over SOCK_SEQPACKET.
local where = {"--name", "/" .. tag, "--socket", "/tmp/" .. tag .. ".sock", "--seqpacket"}
local function start(role, ...)
  local t = {role, stdin = role == "writer", timeout = 20, ...}
  for _, a in ipairs(where) do t[#t + 1] = a end
  return P.start(t)
end
local w = start("writer")
check(w:wait_line("listen success", 5), "the writer listens on a SOCK_SEQPACKET socket")
local r = start("reader")
check(r:wait_line("epoll wait start", 5), "a --seqpacket reader got its eventfd")
w:send("-w hello shared memory")
check(r:wait_line("^message=hello shared memory$", 5) and r:grep("^counter=2$") == 1,
      "the reader saw counter=2, message=hello shared memory")

-- A stream reader cannot connect to a seqpacket listener.
local wrong = P.start{"reader", "--name", "/" .. tag, "--socket", "/tmp/" .. tag .. ".sock",
                      "--wait", "0", timeout = 10}
local code = wrong:wait(5)
print("stream reader against it: " .. (wrong:stderr():match("[^\n]+") or "(no message)"))
check(code == 1 and wrong:stderr():find("other socket type", 1, true) ~= nil,
      "a stream reader is refused (EPROTOTYPE)")

w:send("-t")
check(r:wait(2) == 0 and r:grep("writer shut down") == 1, "the reader ended with status 0 after -t")
check(w:wait(2) == 0, "the writer ended with status 0")
P.cleanup()
if not pass then w:show("writer") r:show("reader") end
print(pass and "PASS: SOCK_SEQPACKET keeps message boundaries, and the lab runs over it unchanged" or "FAIL")
os.exit(pass and 0 or 1)
