-- scripts/lib/cli.lua, the command line of the bundled scripts: each case runs a child shmhost
-- whose script parses its arguments with cli.parse and prints the result, and checks its
-- stdout, stderr and exit status (a usage error and --help end the process, so they can only
-- be seen from outside).
local T = require "testlib"
local shm = require "shmhost"

-- The child's script: SPEC is a Lua expression for the spec; the result is printed as sorted
-- key=value pairs (a list as a,b in its order; a set as its sorted keys).
local PRELUDE = [[
local cli = require "cli"
local function show(o)
  local keys = {}
  for k in pairs(o) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = o[k]
    if type(v) == "table" then
      local items, set = {}, {}
      for x in pairs(v) do if type(x) == "string" then set[#set + 1] = x end end
      table.sort(set)
      for i, x in ipairs(v) do items[i] = tostring(x) end
      table.move(set, 1, #set, #items + 1, items)
      v = table.concat(items, ",")
    end
    out[#out + 1] = k .. "=" .. tostring(v)
  end
  print(table.concat(out, " "))
end
]]

local USAGE = "usage: shmhost demo [--name /N] [--count N] [--json]"

local function run(spec, ...)
  local code = PRELUDE .. "show(cli.parse(arg, " .. spec .. "))"
  return T.shmhost{"-e", code, timeout = 20, table.unpack({...})}
end

-- A spec with one of every kind of entry.
local SPEC = ([[{
  prog = "demo", usage = %q,
  defaults = {count = 10, name = "/def"},
  {"--name", cli.posix_name},
  {"--count", cli.integer(1, 100)},
  {"--wait", cli.seconds},
  {"--value", cli.number},
  {"--via", cli.choice{"a", "b", "c"}},
  {"--json"},
  {"--dry-run"},
  {"--out", cli.string, key = "path"},
  {"--pair", cli.string, n = 2},
  {"--seqpacket", set = function(o) o.type = "seqpacket" end},
}]]):format(USAGE)

local function usage_error(r, message)
  T.eq(r.code, 2, "status of a usage error: " .. r.stderr)
  T.eq(r.stdout, "", "nothing on stdout")
  T.eq(r.stderr, "demo: " .. message .. "\n" .. USAGE .. "\n", "stderr")
end

T.test("options, flags, defaults and keys", function()
  local r = run(SPEC, "--name", "/x", "--count=7", "--json", "--dry-run", "--out", "-", "--wait",
                "0.5", "--value", "-2.5", "--via", "b", "--pair", "p", "q", "--seqpacket")
  T.eq(r.code, 0, r.stderr)
  T.eq(r.stdout, "count=7 dry_run=true json=true name=/x pair=p,q path=- type=seqpacket " ..
                 "value=-2.5 via=b wait=0.5\n")
  r = run(SPEC)
  T.eq(r.stdout, "count=10 name=/def\n", "defaults alone")
end)

T.test("a value is the next word, whatever it looks like", function()
  local r = run(SPEC, "--out", "--json")
  T.eq(r.stdout, "count=10 name=/def path=--json\n")
  r = run(SPEC, "--out", "--help")
  T.eq(r.stdout, "count=10 name=/def path=--help\n", "--help as a value is no request for help")
  r = run(SPEC, "--out=a=b")
  T.eq(r.stdout, "count=10 name=/def path=a=b\n", "--opt=value splits at the first =")
end)

T.test("--help and -h print the usage on stdout and exit 0", function()
  for _, w in ipairs{"--help", "-h"} do
    local r = run(SPEC, "--count", "5", w, "--bogus")
    T.eq(r.code, 0, w)
    T.eq(r.stdout, USAGE .. "\n", w)
    T.eq(r.stderr, "", w)
  end
end)

T.test("usage errors name the option and the word", function()
  usage_error(run(SPEC, "--count", "0"), "--count must be an integer from 1 to 100, got '0'")
  usage_error(run(SPEC, "--count", "1.5"), "--count must be an integer from 1 to 100, got '1.5'")
  usage_error(run(SPEC, "--count"), "--count needs a value")
  usage_error(run(SPEC, "--count="), "--count must be an integer from 1 to 100, got ''")
  usage_error(run(SPEC, "--wait", "-1"), "--wait needs a number of seconds, got '-1'")
  usage_error(run(SPEC, "--wait", "nan"), "--wait needs a number of seconds, got 'nan'")
  usage_error(run(SPEC, "--value", "x"), "--value needs a number, got 'x'")
  usage_error(run(SPEC, "--via", "d"), "--via must be a, b or c, got 'd'")
  usage_error(run(SPEC, "--name", "x"), "--name must look like /name (one slash, at the start), got 'x'")
  usage_error(run(SPEC, "--name", "/a/b"), "--name must look like /name (one slash, at the start), got '/a/b'")
  usage_error(run(SPEC, "--name", "/" .. ("n"):rep(256)), "--name has 256 bytes after the slash, more than 255")
  usage_error(run(SPEC, "--json=yes"), "--json takes no value")
  usage_error(run(SPEC, "--pair", "p"), "--pair needs a value")
  usage_error(run(SPEC, "--bogus"), "unknown option '--bogus'")
  usage_error(run(SPEC, "-5"), "unknown option '-5'")
  usage_error(run(SPEC, "word"), "unexpected argument 'word'")
  local r = run(SPEC, "--name", "/" .. ("n"):rep(255))
  T.eq(r.code, 0, "255 bytes after the slash: " .. r.stderr)
end)

T.test("integer bounds read in the message", function()
  local checks = {
    {"cli.integer(0)", "-1", "needs a non-negative integer, got '-1'"},
    {"cli.integer(1)", "0", "needs a positive integer, got '0'"},
    {"cli.integer(5)", "4", "needs an integer of at least 5, got '4'"},
    {"cli.integer(nil, 5)", "6", "needs an integer of at most 5, got '6'"},
    {"cli.integer()", "x", "needs an integer, got 'x'"},
  }
  for _, c in ipairs(checks) do
    local spec = ('{prog = "demo", usage = %q, {"--n", %s}}'):format(USAGE, c[1])
    usage_error(run(spec, "--n", c[2]), "--n " .. c[3])
  end
  local spec = ('{prog = "demo", usage = %q, {"--n", cli.integer(0)}}'):format(USAGE)
  T.eq(run(spec, "--n", "0x10").stdout, "n=16\n", "hex as tonumber reads it")
end)

T.test("positional words, --, - and negative numbers", function()
  local spec = ([[{
    prog = "demo", usage = %q, defaults = {targets = {}},
    {"--x"},
    positional = function(o, w)
      if w == "bad" then return nil, "bad is a bad word" end
      o.targets[#o.targets + 1] = w
      return true
    end,
  }]]):format(USAGE)
  local r = run(spec, "a", "--x", "-", "-3", "--", "--x", "-h")
  T.eq(r.code, 0, r.stderr)
  T.eq(r.stdout, "targets=a,-,-3,--x,-h x=true\n")
  usage_error(run(spec, "bad"), "bad is a bad word")
  usage_error(run(spec, "-y"), "unknown option '-y'")
  local one = ('{prog = "demo", usage = %q, unknown = "unknown argument \'%%s\'", positional = "target"}')
              :format(USAGE)
  T.eq(run(one, "t").stdout, "target=t\n", "one positional slot")
  usage_error(run(one, "t", "u"), "unexpected argument 'u'")
  usage_error(run(one, "--t"), "unknown argument '--t'")
end)

T.test("usage_error without a message prints the usage only", function()
  local r = T.shmhost{"-e", ('local cli = require "cli"; cli.parse(arg, {prog = "demo", usage = %q}); ' ..
                             'cli.usage_error(); print("not reached")'):format(USAGE), timeout = 20}
  T.eq(r.code, 2)
  T.eq(r.stdout, "")
  T.eq(r.stderr, USAGE .. "\n")
end)

T.test("die and say print PROG: message; die ends with the status and runs the cleanup", function()
  local name = T.name("cli_die")
  local code = ([[
    local cli, shm = require "cli", require "shmhost"
    cli.parse({}, {prog = "demo"})
    assert(shm.open(%q, {create = true, size = 4096}))
    cli.say("a note")
    cli.die("it failed", tonumber(arg[1]))
    print("not reached")]]):format(name)
  local r = T.shmhost{"-e", code, "3", timeout = 20}
  T.eq(r.code, 3)
  T.eq(r.stdout, "")
  T.eq(r.stderr, "demo: a note\ndemo: it failed\n")
  T.ok(not shm.open(name), "the segment created before die is removed")
  r = T.shmhost{"-e", code, timeout = 20}
  T.eq(r.code, 1, "status 1 by default")
end)

T.test("die from a luv callback, outside any task, ends with its status", function()
  local r = T.shmhost{"-e", [[
    local cli, uv = require "cli", require "luv"
    cli.parse(arg, {prog = "demo"})
    local t = uv.new_timer()
    t:start(10, 0, function() cli.die("late", 4) end)]], timeout = 20}
  T.eq(r.code, 4, r.stderr)
  T.eq(r.stderr, "demo: late\n")
end)

T.test("the program name is the script's file name until parse names it", function()
  local path = "/tmp/" .. T.tag .. "_prog.lua"
  local f = assert(io.open(path, "w"))
  f:write('require("cli").die("from the file")\n')
  f:close()
  local r = T.shmhost{path, timeout = 20}
  os.remove(path)
  T.eq(r.code, 1)
  T.eq(r.stderr, T.tag .. "_prog: from the file\n")
  r = T.shmhost{"-e", 'require("cli").die("from -e")', timeout = 20}
  T.eq(r.stderr, "shmhost: from -e\n", "-e has no file name")
end)

T.done()
