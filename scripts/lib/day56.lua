-- What the Day56 writer and reader share: the struct in the segment, the defaults, the
-- options both take, the wire's hello line, and a line reader for stdin on the loop. The
-- protocol itself is described at the top of scripts/writer.lua.
local shm = require "shmhost"
local uv = require "luv"
local cli = require "cli"

local M = {}

M.NAME = "/day56_shm"
M.SOCKET = "/tmp/day56_shm_ctrl.sock"
M.MSG_SIZE = 256

-- struct shm_data { pthread_mutex_t lock; bool activation; int counter; char message[256]; }
-- laid out as the C compiler lays it out, so the lab's C programs share it byte for byte.
M.Data = shm.layout{
  {"lock", "mutex"}, {"activation", "bool"}, {"counter", "int"}, {"message", "char[256]"}}

-- The first message on every control connection: this text plus, by SCM_RIGHTS, the reader's
-- own eventfd. It names the segment so a reader pointed at another one can say so.
M.HELLO = "day56 "
function M.hello(name) return M.HELLO .. name .. "\n" end

-- Parses the options of `prog` ("writer" or "reader") from the script's `arg`; a mistake is
-- a usage error (lib/cli.lua). Only the reader waits for its peer, so only it takes --wait.
function M.options(prog, usage)
  local spec = {
    prog = prog, usage = usage,
    defaults = {name = M.NAME, path = M.SOCKET, type = "stream", wait = 5},
    {"--name", cli.posix_name},
    -- A path and an abstract name exclude each other: the last one given counts.
    {"--socket", cli.string, set = function(o, v) o.path, o.abstract = v, nil end},
    {"--abstract", cli.string, set = function(o, v) o.abstract, o.path = v, nil end},
    {"--seqpacket", set = function(o) o.type = "seqpacket" end},
  }
  if prog == "reader" then spec[#spec + 1] = {"--wait", cli.seconds} end
  local o = cli.parse(arg, spec)
  if (o.path or o.abstract) == "" then cli.usage_error("the socket name must not be empty") end
  o.sockname = o.abstract and ("@" .. o.abstract) or o.path
  return o
end

-- The address part of a shm.unix.listen/connect option table.
function M.address(o, extra)
  local t = {type = o.type}
  if o.abstract then t.abstract = o.abstract else t.path = o.path end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- Calls on_line(line) for every line of stdin (without its "\n"; a last line without one
-- too) and then on_eof(), from the loop, so that the process keeps serving other events
-- while it waits for input. A regular file or a character device cannot be watched by
-- epoll (libuv sees both as files), so those are read with fs_read instead. A line longer
-- than LINE_MAX is dropped with a message rather than held in memory.
M.LINE_MAX = 1024 * 1024
function M.read_lines(on_line, on_eof)
  local pending, size, overlong = {}, 0, false
  local function line_done()
    if overlong then
      io.stderr:write(("stdin: a line longer than %d bytes was ignored\n"):format(M.LINE_MAX))
    else
      on_line(table.concat(pending))
    end
    pending, size, overlong = {}, 0, false
  end
  local function keep(piece)
    size = size + #piece
    if size > M.LINE_MAX then overlong, pending = true, {} end
    if not overlong then pending[#pending + 1] = piece end
  end
  local function feed(data)
    local start = 1
    while true do
      local nl = data:find("\n", start, true)
      if not nl then break end
      keep(data:sub(start, nl - 1))
      line_done()
      start = nl + 1
    end
    if start <= #data then keep(data:sub(start)) end
  end
  local function finish()
    if size > 0 or overlong then line_done() end
    on_eof()
  end
  local kind = uv.guess_handle(0)
  if kind == "file" or kind == "unknown" then
    local function step()
      uv.fs_read(0, 65536, -1, function(err, data)
        if err or data == nil or data == "" then
          if err then io.stderr:write("stdin: ", tostring(err), "\n") end
          return finish()
        end
        feed(data)
        step()
      end)
    end
    step()
    return nil
  end
  local h = kind == "tty" and uv.new_tty(0, true) or uv.new_pipe(false)
  if kind ~= "tty" then h:open(0) end
  h:read_start(function(err, data)
    if data then return feed(data) end
    if err then io.stderr:write("stdin: ", tostring(err), "\n") end
    h:read_stop()
    h:close()
    finish()
  end)
  return h
end

return M
