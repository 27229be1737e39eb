-- What seqnum_init and seqnum_get (the course's sequence-number example) share: the object's
-- default name, its struct, and the command line both read.
local shm = require "shmhost"
local cli = require "cli"

local M = {}

M.NAME = "/pshm_seqnum"

-- struct shmbuf { sem_t sem; int seqnum; }, the course's struct byte for byte.
M.Shmbuf = shm.layout{{"sem", "sem"}, {"seqnum", "int"}}

-- Parses the command line by `spec` (as cli.parse takes it) plus what both scripts read:
-- --name /NAME or the word /NAME, and one integer word, in any order, stored at
-- o[spec.number] after spec.check (a cli check; spec.what names the word in its message).
function M.options(spec)
  spec.unknown = "unexpected argument '%s'"
  spec.defaults = spec.defaults or {}
  spec.defaults.name = M.NAME
  spec[#spec + 1] = {"--name", cli.posix_name}
  local key, check, what = spec.number, spec.check, spec.what
  spec.positional = function(o, word)
    if word:sub(1, 1) == "/" then
      local name, msg = cli.posix_name(word, "NAME")
      o.name = name or o.name
      return name ~= nil, msg
    end
    if o[key] ~= nil or not word:match("^[-+]?%d+$") then return false end
    local msg
    o[key], msg = check(word, what)
    return o[key] ~= nil, msg
  end
  return cli.parse(arg, spec)
end

return M
