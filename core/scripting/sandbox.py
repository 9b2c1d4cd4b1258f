"""The Lua side of the sandbox: the code that builds the environment scripts run in.

Redis 7.0 runs scripts in one Lua 5.1 state whose globals table and library tables are
read-only (its Lua is patched for that).  lupa's Lua is stock 5.1, so read-only tables are
proxies here: an empty table whose metatable reads from the real one and refuses writes, with
``next``/``pairs``/``rawget``/``rawset``/``getmetatable`` taught to see through them, so a
script observes what it would observe on Redis.  Everything Python hands to Lua is wrapped in
a Lua closure: a Python object reachable from a script would expose its attributes.

``BOOTSTRAP`` runs once per interpreter with a table of Python helpers (``py``) and returns
the functions :mod:`trioredis.scripting.runtime` calls.  Its chunk name is ``INTERNAL``: the
error handler skips frames of that chunk when it looks for the script line an error comes from.
"""

from __future__ import annotations

INTERNAL = "=[trioredis]"

# Instructions between two calls of the count hook (Redis uses the same figure): often enough
# to notice a busy script within milliseconds, rare enough to cost nothing measurable.
HOOK_COUNT = 100000

BOOTSTRAP = r"""
local py = ...
local rawnext, rawtype, rawsetmetatable, rawgetmetatable = next, type, setmetatable, getmetatable
local rawrawget, rawrawset, rawloadstring, rawload = rawget, rawset, loadstring, load
local rawerror, rawselect, rawtostring, rawsetfenv = error, select, tostring, setfenv
local rawxpcall, rawunpack, gsub = xpcall, unpack, string.gsub
local cocreate, coresume, costatus = coroutine.create, coroutine.resume, coroutine.status
local dbg = debug
local INTERNAL = py.internal
local HOOK_COUNT = py.hook_count

local script_resp3 = false  -- redis.setresp(3) was called by the running script

-- proxy -> the real table behind it (weak keys: proxies of dropped tables go away).
local real_of = rawsetmetatable({}, {__mode = 'k'})

local function readonly_error()
  rawerror('Attempt to modify a readonly table', 2)
end

local function protect(real)
  local proxy = {}
  real_of[proxy] = real
  local mt = {__index = real, __newindex = readonly_error, __metatable = false}
  rawsetmetatable(proxy, mt)
  return proxy, mt
end

local function copy(t)
  local c = {}
  for k, v in rawnext, t do c[k] = v end
  return c
end

local function safe_next(t, k)
  return rawnext(real_of[t] or t, k)
end

local function missing_global(_, name)
  rawerror("Script attempted to access nonexistent global variable '" .. rawtostring(name) .. "'", 2)
end
local globals = {}
local env, env_mt = protect(globals)
rawsetmetatable(globals, {__index = missing_global})

local string_mt = rawgetmetatable('')
local string_lib = protect(copy(string))
string_mt.__index = string_lib
local string_mt_view = protect(string_mt)

local function sandboxed(f)
  if f then rawsetfenv(f, env) end
  return f
end

-- The error handler (Redis's __redis__err__handler): turn any error into a table with the
-- script position it comes from, skipping C functions and this file's own frames.
local take_error = py.take_error
local function err_handler(err)
  local level = 2
  local info = dbg.getinfo(level, 'nSl')
  while info and (info.what == 'C' or info.source == INTERNAL) do
    level = level + 1
    info = dbg.getinfo(level, 'nSl')
  end
  if rawtype(err) == 'userdata' then
    -- A Python function failed: the exception holds the error (a table, or a message to
    -- place at the calling line as luaL_error does).
    local pending, positioned = take_error(err)
    if pending ~= nil then
      if positioned then
        local where = (info and info.currentline > 0) and (info.short_src .. ':' .. info.currentline .. ': ') or ''
        err = where .. pending
      else
        err = pending
      end
    end
  end
  if rawtype(err) ~= 'table' then
    err = {err = 'ERR ' .. rawtostring(err)}
  end
  if info then
    err['source'] = info.source
    err['line'] = info.currentline
  end
  return err
end

-- The count hook: asks Python whether the script is to stop (SCRIPT KILL, SHUTDOWN NOSAVE);
-- Python also serves other clients from there once the script is busy.  Once killed, the hook
-- fires on every line, so a script that catches the error with pcall cannot go on.
local pyhook = py.hook
local function count_hook()
  local stop = pyhook()
  if stop then
    local running = dbg.getinfo(2, 'S')
    if running and running.source == INTERNAL then return end  -- not in our own frames
    dbg.sethook(count_hook, 'l')
    rawerror({err = stop})
  end
end
local function arm(co)
  if co then dbg.sethook(co, count_hook, '', HOOK_COUNT) else dbg.sethook(count_hook, '', HOOK_COUNT) end
end

local safe = {}
safe._G = env
safe._VERSION = _VERSION
for _, name in ipairs({'assert', 'collectgarbage', 'error', 'gcinfo', 'ipairs', 'pcall',
                       'rawequal', 'select', 'setmetatable', 'tonumber', 'tostring', 'type',
                       'unpack', 'xpcall'}) do
  safe[name] = _G[name]
end
safe.next = safe_next
safe.pairs = function(t)
  if rawtype(t) ~= 'table' then
    rawerror("bad argument #1 to 'pairs' (table expected, got " .. (t == nil and 'no value' or rawtype(t)) .. ")", 2)
  end
  return safe_next, t, nil
end
safe.rawget = function(t, k) return rawrawget(real_of[t] or t, k) end
safe.rawset = function(t, k, v)
  if real_of[t] then rawerror('Attempt to modify a readonly table', 0) end
  return rawrawset(t, k, v)
end
safe.getmetatable = function(t)
  local kind = rawtype(t)
  if kind == 'string' then return string_mt_view end
  -- lupa's metatable of Python objects is shared by every one of them: never hand it out.
  if kind == 'userdata' or real_of[t] then return nil end
  return rawgetmetatable(t)
end
-- Lua source only: a precompiled (binary) chunk could corrupt the interpreter, so one is
-- read as text, which fails on its first byte as on Redis (whose Lua reads text only).
local function text_only(s, name)
  if rawtype(s) == 'string' and s:byte(1) == 27 then
    local _, e = rawloadstring('\1', name or s)
    return nil, (gsub(e, "'char%(1%)'", "'char(27)'"))
  end
  return rawloadstring(s, name)
end
safe.loadstring = function(s, name)
  local f, e = text_only(s, name)
  return sandboxed(f), e
end
safe.load = function(fn, name)
  if rawtype(fn) ~= 'function' then return sandboxed(rawload(fn, name)) end
  local parts = {}
  while true do
    local piece = fn()
    if piece == nil or piece == '' then break end
    if rawtype(piece) ~= 'string' then return nil, 'reader function must return a string' end
    parts[#parts + 1] = piece
  end
  local f, e = text_only(table.concat(parts), name or '=(load)')
  return sandboxed(f), e
end
safe.string = string_lib
safe.table = protect(copy(table))

-- Coroutines get the count hook too: an endless loop inside one must stay killable.
local co = copy(coroutine)
co.create = function(f)
  local c = cocreate(f)
  arm(c)
  return c
end
co.wrap = function(f)
  local c = co.create(f)
  return function(...)
    local results = {coresume(c, ...)}
    if results[1] then return rawunpack(results, 2, table.maxn(results)) end
    rawerror(results[2], 0)
  end
end
safe.coroutine = protect(co)


-- The redis table.  The functions Python implements are Python callables, which Lua calls
-- as it calls C functions: `return redis.call(...)` keeps the script's frame, so an error
-- names the script's line.  One that fails hands its error to Python (py.take_error) and
-- raises; the error handler picks it up.  `type` says 'function' for them, as on Redis.
local python_functions = rawsetmetatable({}, {__mode = 'k'})
local function expose(f)
  python_functions[f] = true
  return f
end
safe.type = function(...)
  local t = rawtype(...)
  if t == 'userdata' and python_functions[...] then return 'function' end
  return t
end
-- math.random as Redis's: its own rand48 generator (Python side), not the C library's.
local m = copy(math)
m.random = py.random
m.randomseed = py.randomseed
m.random = expose(m.random)
m.randomseed = expose(m.randomseed)
safe.math = protect(m)
local redis = {}
redis.call = expose(py.call)
redis.pcall = expose(py.pcall)
for name, f in rawnext, py.functions do redis[name] = expose(f) end
redis.error_reply = function(...)
  local e = ...
  if rawselect('#', ...) ~= 1 or rawtype(e) ~= 'string' then
    return py.error_table('wrong number or type of arguments')
  end
  if e:sub(1, 1) ~= '-' then e = '-' .. e end
  return py.error_table(e)
end
redis.status_reply = function(...)
  local s = ...
  if rawselect('#', ...) ~= 1 or rawtype(s) ~= 'string' then
    return py.error_table('wrong number or type of arguments')
  end
  return {ok = s}
end
redis.breakpoint = function() return false end
redis.debug = function() return nil end
redis.replicate_commands = function() return true end
for name, value in rawnext, py.constants do redis[name] = value end
safe.redis = protect(redis)

for name, lib in rawnext, py.libraries do
  local t = {}
  for k, v in rawnext, lib do
    -- Python functions are userdata (cjson.null is a plain userdata value).
    if rawtype(v) == 'userdata' and k ~= 'null' then t[k] = expose(v) else t[k] = v end
  end
  safe[name] = protect(t)
end

for k, v in rawnext, safe do globals[k] = v end
globals.__redis__err__handler = err_handler

-- A script's return value as RESP for the calling client (Redis's luaReplyToRedisReply);
-- tables are read raw, so a metatable cannot run code here.  A number is C's cast to long
-- long, which string.format('%d') is too (NaN and out of range give the minimum on x86-64).
local MAX_DEPTH = 1000
local format, concat, gsub = string.format, table.concat, string.gsub
local function one_line(s) return (gsub(s, '[\r\n]', ' ')) end
local function bulk(s) return '$' .. #s .. '\r\n' .. s .. '\r\n' end
local function double_text(d)
  if d == 1/0 then return 'inf' elseif d == -1/0 then return '-inf' end
  return format('%.17g', d)
end
local function encode_reply(v, resp3, out, depth)
  local t = rawtype(v)
  if t == 'string' then
    out[#out + 1] = bulk(v)
  elseif t == 'number' then
    out[#out + 1] = format(':%d\r\n', v)
  elseif t == 'boolean' then
    if script_resp3 then
      if resp3 then out[#out + 1] = v and '#t\r\n' or '#f\r\n'
      else out[#out + 1] = v and ':1\r\n' or ':0\r\n' end
    elseif v then out[#out + 1] = ':1\r\n'
    else out[#out + 1] = resp3 and '_\r\n' or '$-1\r\n' end
  elseif t ~= 'table' then
    out[#out + 1] = resp3 and '_\r\n' or '$-1\r\n'
  elseif depth >= MAX_DEPTH then
    out[#out + 1] = '-ERR reached lua stack limit\r\n'
  else
    local f = rawrawget(v, 'err')
    if rawtype(f) == 'string' then out[#out + 1] = '-' .. one_line(f) .. '\r\n' return end
    f = rawrawget(v, 'ok')
    if rawtype(f) == 'string' then out[#out + 1] = '+' .. one_line(f) .. '\r\n' return end
    f = rawrawget(v, 'double')
    if rawtype(f) == 'number' then
      local text = double_text(f)
      out[#out + 1] = resp3 and (',' .. text .. '\r\n') or bulk(text)
      return
    end
    f = rawrawget(v, 'big_number')
    if rawtype(f) == 'string' then
      local text = one_line(f)
      out[#out + 1] = resp3 and ('(' .. text .. '\r\n') or bulk(text)
      return
    end
    f = rawrawget(v, 'verbatim_string')
    if rawtype(f) == 'table' then
      local fmt, s = rawrawget(f, 'format'), rawrawget(f, 'string')
      if rawtype(fmt) == 'string' and rawtype(s) == 'string' then
        if resp3 then out[#out + 1] = '=' .. (#s + 4) .. '\r\n' .. fmt:sub(1, 3) .. ':' .. s .. '\r\n'
        else out[#out + 1] = bulk(s) end
        return
      end
    end
    f = rawrawget(v, 'map')
    if rawtype(f) == 'table' then
      local header = #out + 1
      out[header] = ''
      local n = 0
      for k, item in rawnext, f do
        n = n + 1
        encode_reply(k, resp3, out, depth + 1)
        encode_reply(item, resp3, out, depth + 1)
      end
      out[header] = resp3 and ('%' .. n .. '\r\n') or ('*' .. (2 * n) .. '\r\n')
      return
    end
    f = rawrawget(v, 'set')
    if rawtype(f) == 'table' then
      local header = #out + 1
      out[header] = ''
      local n = 0
      for k in rawnext, f do
        n = n + 1
        encode_reply(k, resp3, out, depth + 1)
      end
      out[header] = (resp3 and '~' or '*') .. n .. '\r\n'
      return
    end
    local header = #out + 1
    out[header] = ''
    local n = 0
    while true do
      local item = rawrawget(v, n + 1)
      if item == nil then break end
      n = n + 1
      encode_reply(item, resp3, out, depth + 1)
    end
    out[header] = '*' .. n .. '\r\n'
  end
end

local function finish(resp3, ok, value)
  if ok then
    local out = {}
    encode_reply(value, resp3, out, 0)
    return true, concat(out)
  end
  if rawtype(value) == 'table' then
    return false, rawrawget(value, 'err'), rawrawget(value, 'source'), rawrawget(value, 'line')
  end
  return false, nil, nil, nil, rawtostring(value)
end

local api = {}
function api.compile(body, chunkname)
  local f, e = text_only(body, chunkname)
  if not f then return nil, e end
  return sandboxed(f), nil
end
function api.set_script_resp3(on)
  script_resp3 = on
end
-- KEYS and ARGV are built here from the arguments (nkeys keys, then the args): cheaper than
-- building Lua tables from Python.
local function fill(t, from, to, ...)
  for i = from, to do t[i - from + 1] = rawselect(i, ...) end
  return t
end
function api.run(f, resp3, nkeys, ...)
  local n = rawselect('#', ...)
  rawrawset(globals, 'KEYS', fill({}, 1, nkeys, ...))
  rawrawset(globals, 'ARGV', fill({}, nkeys + 1, n, ...))
  script_resp3 = false
  arm()
  local ok, value = rawxpcall(f, err_handler)
  dbg.sethook()
  return finish(resp3, ok, value)
end
function api.run_function(f, resp3, nkeys, ...)
  local n = rawselect('#', ...)
  local keys, args = fill({}, 1, nkeys, ...), fill({}, nkeys + 1, n, ...)
  script_resp3 = false
  arm()
  local ok, value = rawxpcall(function() return f(keys, args) end, err_handler)
  dbg.sethook()
  return finish(resp3, ok, value)
end
function api.disarm()
  dbg.sethook()
end
-- Function libraries: while a library's code runs, its globals are the load-time API only
-- (redis.register_function, redis.log and the constants), as in Redis 7.0.
if py.functions_mode then
  local load_redis = {register_function = expose(py.register_function), log = redis.log}
  for name, value in rawnext, py.constants do
    if name:sub(1, 4) == 'LOG_' or name:sub(1, 6) == 'REDIS_' then load_redis[name] = value end
  end
  rawsetmetatable(load_redis, {__index = missing_global})
  local load_globals = {redis = protect(load_redis)}
  rawsetmetatable(load_globals, {__index = missing_global})
  local rawpcall = pcall
  function api.load_library(f)
    env_mt.__index = load_globals
    arm()
    local ok, err = rawpcall(f)
    env_mt.__index = globals
    dbg.sethook()
    if ok then return true, nil end
    if rawtype(err) == 'userdata' then
      local pending = take_error(err)
      if pending ~= nil then err = pending end
    end
    if rawtype(err) == 'table' then return false, rawrawget(err, 'err') end
    return false, 'ERR ' .. rawtostring(err)
  end
end
api.protect = protect
api.env = env
api.globals = globals
return api
"""
