-- The command line of the bundled scripts: one option parser, and the few messages a script
-- prints about itself ("PROG: message" on stderr; the usage on --help and on a usage error).
--
--   local cli = require "cli"
--   local o = cli.parse(arg, {
--     prog = "xfr_writer", usage = USAGE,
--     defaults = {name = "/pshm_xfr", block = 65536, wait = 10},
--     {"--name", cli.posix_name},              -- an option with a value, checked: o.name
--     {"--block", cli.integer(1, 1 << 28)},    -- an integer in a range
--     {"--wait", cli.seconds},                 -- a non-negative number of seconds
--     {"--ring"},                              -- a flag: o.ring = true
--   })
--   cli.die("no writer on /pshm_xfr")          -- "xfr_writer: no writer ..." and status 1
--
-- The conventions, the same for every script:
--   -h, --help         the usage on stdout, status 0
--   a usage error      "PROG: MESSAGE", then the usage, on stderr, status 2
--   --opt VALUE        also --opt=VALUE; the value is the next word whatever it looks like, so
--                      "--length -3" is a bad length, not an unknown option
--   --                 ends the options: every later word is a positional argument
--   an unknown word    a word that begins with "-" and is no option is an unknown option, except
--                      a number when the script takes positional arguments ("seqnum_get -3" is
--                      a bad run-length); any other word is a positional argument
--
-- An option entry is {NAME, CHECK, key = K, set = F, n = N}:
--   NAME    "--name" (the result goes to o.name; "--sensor-id" to o.sensor_id)
--   CHECK   a function(word, NAME) returning the value, or nil and the whole message of the
--           usage error (cli.string, cli.integer(lo, hi), cli.number, cli.seconds,
--           cli.choice{...}, cli.posix_name, or the script's own); none makes a flag (true)
--   key     store at o[K] instead
--   set     call F(o, value) instead of storing (options that change more than one field)
--   n       the option takes N words, each checked; the value is then a list of them
-- The spec's other fields: prog and usage (what the messages use; they stay set for die),
-- defaults (copied into the result first), positional (a key that takes one word, or a
-- function(o, word) returning true when it takes the word, false when it does not want it,
-- or nil and a message), and unknown (the message for an unknown option, a format with one
-- %s; each script keeps the wording its users and tests have always seen).
local shm = require "shmhost"

local M = {}

-- The script's name in its messages and its usage text. parse() sets both; until then the
-- name is the script's file name. One process runs one script, as a C program has one name
-- for err(3) to print.
M.prog = ((arg and arg[0] or ""):match("([^/]*)$"):gsub("%.lua$", ""))
if M.prog == "" or M.prog:sub(1, 1) == "-" then M.prog = "shmhost" end
M.usage = nil

-- ------------------------------------------------------------ messages

-- "PROG: msg" on stderr, for what a person should know without the script ending.
function M.say(msg)
  io.stderr:write(M.prog, ": ", tostring(msg), "\n")
end

-- "PROG: msg" on stderr, then exit with `code` (default 1). shmhost.exit runs the cleanup that
-- removes what the script created, as the end of a script does, and never returns: in a task
-- it stops the task; in a callback it unwinds to the runtime.
function M.die(msg, code)
  M.say(msg)
  shm.exit(code or 1)
end

-- A mistake on the command line: "PROG: msg" (when given) and the usage on stderr, status 2.
function M.usage_error(msg)
  if msg then M.say(msg) end
  if M.usage then io.stderr:write(M.usage, "\n") end
  shm.exit(2)
end

-- The usage on stdout (it is what was asked for), status 0.
function M.help()
  io.stdout:write(M.usage or ("usage: shmhost " .. M.prog), "\n")
  shm.exit(0)
end

-- ------------------------------------------------------------ checks of one word

local function got(word) return (", got '%s'"):format(word) end

-- Any text, the empty string included.
function M.string(word) return word end

-- An integer within [lo, hi]; either bound may be left out. "1e3" and "0x10" are integers
-- too, as tonumber reads them.
function M.integer(lo, hi)
  local want
  if lo and hi then want = ("must be an integer from %d to %d"):format(lo, hi)
  elseif lo == 0 then want = "needs a non-negative integer"
  elseif lo == 1 then want = "needs a positive integer"
  elseif lo then want = ("needs an integer of at least %d"):format(lo)
  elseif hi then want = ("needs an integer of at most %d"):format(hi)
  else want = "needs an integer" end
  return function(word, opt)
    local n = math.tointeger(tonumber(word))
    if n and (not lo or n >= lo) and (not hi or n <= hi) then return n end
    return nil, opt .. " " .. want .. got(word)
  end
end

-- Any number.
function M.number(word, opt)
  local n = tonumber(word)
  if n then return n end
  return nil, opt .. " needs a number" .. got(word)
end

-- A time in seconds, fractions allowed, as every time value of shmhost is: not negative, not
-- NaN (which fails every comparison, so n >= 0 keeps it out).
function M.seconds(word, opt)
  local n = tonumber(word)
  if n and n >= 0 then return n end
  return nil, opt .. " needs a number of seconds" .. got(word)
end

-- One of the words in `list`.
function M.choice(list)
  local set = {}
  for _, w in ipairs(list) do set[w] = true end
  local names = #list == 1 and list[1]
                or table.concat(list, ", ", 1, #list - 1) .. " or " .. list[#list]
  return function(word, opt)
    if set[word] then return word end
    return nil, ("%s must be %s%s"):format(opt, names, got(word))
  end
end

-- A POSIX shared-memory or semaphore name. The kernel keeps the object as a file named by
-- what follows the slash in /dev/shm, so that is one path component of at most NAME_MAX
-- (255) bytes.
function M.posix_name(word, opt)
  if not word:match("^/[^/]+$") then
    return nil, opt .. " must look like /name (one slash, at the start)" .. got(word)
  end
  if #word - 1 > 255 then
    return nil, ("%s has %d bytes after the slash, more than 255"):format(opt, #word - 1)
  end
  return word
end

-- ------------------------------------------------------------ the parser

local function key_of(name)
  return (name:gsub("^%-+", ""):gsub("%-", "_"))
end

-- Parses the words args[1..#args] (a script's `arg`) by `spec` (see the top of this file) and
-- returns the table of results. A mistake ends the process with a usage error.
function M.parse(args, spec)
  M.prog = spec.prog or M.prog
  M.usage = spec.usage or M.usage
  local byname = {}
  for _, e in ipairs(spec) do
    assert(type(e[1]) == "string" and e[1]:match("^%-%-?%w"), "cli.parse: an entry needs a name")
    assert(e[2] == nil or type(e[2]) == "function", "cli.parse: " .. e[1] .. ": bad check")
    byname[e[1]] = e
  end
  local o = {}
  for k, v in pairs(spec.defaults or {}) do o[k] = v end

  local slot_taken = false
  local function positional(word)
    local p, ok, msg = spec.positional, false, nil
    if type(p) == "string" then
      if not slot_taken then o[p], slot_taken, ok = word, true, true end
    elseif p then
      ok, msg = p(o, word)
    end
    if not ok then M.usage_error(msg or ("unexpected argument '%s'"):format(word)) end
  end

  local function option(e, name, inline, i)
    local check, count = e[2], e.n or (e[2] and 1 or 0)
    local value = true
    if count == 0 then
      if inline then M.usage_error(name .. " takes no value") end
    else
      local values = {}
      for k = 1, count do
        local word
        if k == 1 and inline then word = inline else word, i = args[i], i + 1 end
        if word == nil then M.usage_error(name .. " needs a value") end
        local v, msg = check(word, name)
        if v == nil then M.usage_error(msg) end
        values[k] = v
      end
      value = count == 1 and values[1] or values
    end
    if e.set then e.set(o, value) else o[e.key or key_of(name)] = value end
    return i
  end

  local i, only_positional = 1, false
  while i <= #args do
    local word = args[i]
    i = i + 1
    if only_positional or word == "-" or word:sub(1, 1) ~= "-" then
      positional(word)
    elseif word == "--" then
      only_positional = true
    elseif word == "-h" or word == "--help" then
      M.help()
    else
      local name, inline = word:match("^(%-%-[^=]+)=(.*)$")
      local e = byname[name or word]
      if e then
        i = option(e, name or word, inline, i)
      elseif spec.positional and tonumber(word) then
        positional(word)
      else
        M.usage_error((spec.unknown or "unknown option '%s'"):format(word))
      end
    end
  end
  return o
end

return M
