-- Argo CD health check for Tailor TrainingJobs (tailor.dev/v1alpha1).
-- Install: see docs/gitops.md (argocd-cm key resource.customizations.health.tailor.dev_TrainingJob).
-- Reads the conditions the operator writes (docs/operator.md): Failed and Stalled are
-- Degraded (a person must act), Succeeded is Healthy, anything else is Progressing.
-- Lua 5.1, as Argo CD's gopher-lua runs it.
local hs = {status = "Progressing", message = "Waiting for the Tailor operator"}
if obj.status == nil then
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the Tailor operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    conditions[condition.type] = condition
  end
end

local function holds(kind)
  local condition = conditions[kind]
  return condition ~= nil and condition.status == "True"
end

local function describe(condition)
  local text = condition.reason or ""
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

if holds("Failed") then
  hs.status = "Degraded"
  hs.message = describe(conditions["Failed"])
elseif holds("Succeeded") then
  hs.status = "Healthy"
  hs.message = describe(conditions["Succeeded"])
elseif holds("Stalled") then
  hs.status = "Degraded"
  hs.message = describe(conditions["Stalled"])
elseif holds("Reconciling") then
  hs.message = describe(conditions["Reconciling"])
elseif obj.status.message ~= nil then
  hs.message = obj.status.message
end
return hs
