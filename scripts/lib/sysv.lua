-- What sysv_writer and sysv_reader (chapter 77) share: the key file and project of ftok, the
-- options both take, the struct of --struct, and where shmat put a segment.
local shm = require "shmhost"
local cli = require "cli"

local M = {}

M.KEYFILE = "/tmp/shm_key_file"

-- struct SensorData { int sensor_id; double value; char status[16]; }, as the C compiler lays
-- it out.
M.SensorData = shm.layout{{"sensor_id", "int"}, {"value", "double"}, {"status", "char[16]"}}

-- Parses the command line of `prog`: --keyfile, --proj and --struct, which both sides take,
-- then the entries in `more` (with their defaults in more.defaults). o.proj is what shm.ftok
-- takes: one character, or the number 1-255 written in digits.
function M.options(prog, usage, more)
  local spec = {
    prog = prog, usage = usage,
    defaults = {keyfile = M.KEYFILE, proj = "X"},
    {"--keyfile", cli.string},
    {"--proj", cli.string},
    {"--struct"},
  }
  for k, v in pairs(more.defaults or {}) do spec.defaults[k] = v end
  for _, e in ipairs(more) do spec[#spec + 1] = e end
  local o = cli.parse(arg, spec)
  if o.proj:match("^%d+$") then o.proj = tonumber(o.proj) end
  return o
end

-- Where shmat put segment `id`: /proc/self/maps names a System V mapping "/SYSV<key>" with the
-- segment id as its inode.
function M.address(id)
  for line in io.lines("/proc/self/maps") do
    local from, inode, path = line:match("^(%x+)%-%x+%s+%S+%s+%x+%s+%S+%s+(%d+)%s+(%S+)")
    if path and path:sub(1, 5) == "/SYSV" and tonumber(inode) == id then return "0x" .. from end
  end
  return "(unknown)"
end

return M
