-- CHKV's Lua sandbox, run once when an engine starts, before any script. It receives the
-- runtime globals (`real`, filled by Rust with the standard and Redis libraries), the
-- load-time globals of FUNCTION LOAD (`loadenv`) and the Rust helpers, and returns the
-- scripts' globals and the function Rust loads libraries with (Rust runs scripts and
-- functions itself, KEYS and ARGV set in `real`, `handler` the error handler). Scripts see
-- `env`, an empty read-only view of `real`:
-- - reading a missing global is an error, and so is creating or changing one;
-- - the library tables (redis, string, cjson, ...) are read-only views too;
-- - `setmetatable`, `rawset`, `getfenv`, `setfenv` and `loadstring` cannot reach around
--   the views, and `loadstring` refuses binary chunks;
-- - `pcall`/`xpcall` cannot swallow SCRIPT KILL: once the script is being killed they
--   raise the kill again as they return.
local real, loadenv, handler, killed, killmsg = ...
local redis = rawget(real, 'redis')

local error, type, tostring, rawset, setmetatable, getmetatable = error, type, tostring, rawset, setmetatable, getmetatable
local getfenv, setfenv, loadstring, pcall, xpcall = getfenv, setfenv, loadstring, pcall, xpcall

local readonly = setmetatable({}, { __mode = 'k' })

local function deny()
  error('Attempt to modify a readonly table', 2)
end

-- What getmetatable returns for a read-only table: itself read-only.
local decoy = {}
setmetatable(decoy, { __newindex = deny, __metatable = decoy })
readonly[decoy] = true

-- A read-only view of `t`: reads go to `t`, writes fail.
local function protect(t)
  local view = {}
  setmetatable(view, { __index = t, __newindex = deny, __metatable = decoy })
  readonly[view] = true
  return view
end

local function missing(_, name)
  error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
end

-- The globals scripts see. Its __index is switched to `loadenv` while a library loads.
local envmeta = { __index = real, __newindex = deny, __metatable = decoy }
local env = setmetatable({}, envmeta)
readonly[env] = true
setmetatable(real, { __index = missing })
setmetatable(loadenv, { __index = missing })
real._G = env

for _, name in ipairs({ 'redis', 'string', 'table', 'math', 'coroutine', 'cjson', 'cmsgpack', 'bit', 'struct' }) do
  local t = rawget(real, name)
  if type(t) == 'table' then
    real[name] = protect(t)
  end
end
local loadredis = rawget(loadenv, 'redis')
setmetatable(loadredis, { __index = missing })
loadenv.redis = protect(loadredis)

-- String methods go through the read-only string library too.
local smeta = getmetatable('')
smeta.__index = real.string
smeta.__metatable = decoy

real.setmetatable = function(t, mt)
  if readonly[t] then
    error('Attempt to modify a readonly table', 2)
  end
  return setmetatable(t, mt)
end

real.rawset = function(t, k, v)
  if readonly[t] then
    error('Attempt to modify a readonly table', 2)
  end
  return rawset(t, k, v)
end

real.getfenv = function(f)
  if f == nil then
    f = 2
  elseif type(f) == 'number' and f > 0 then
    f = f + 1
  end
  local e = getfenv(f)
  if e == real then
    return env
  end
  return e
end

real.setfenv = function(f, t)
  if type(f) ~= 'function' then
    error('Attempt to modify a readonly table', 2)
  end
  return setfenv(f, t)
end

real.loadstring = function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then
    return nil, 'binary chunks are not allowed'
  end
  local f, err = loadstring(s, name)
  if f then
    setfenv(f, env)
  end
  return f, err
end

local function after(...)
  if killed() then
    error(killmsg, 0)
  end
  return ...
end

real.pcall = function(...)
  return after(pcall(...))
end

real.xpcall = function(f, h)
  return after(xpcall(f, h))
end


-- Runs a library's code with the load-time globals.
local function load_run(f)
  envmeta.__index = loadenv
  local ok, err = xpcall(f, handler)
  envmeta.__index = real
  return ok, err
end

return env, load_run
