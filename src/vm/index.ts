export { findFirmware, guestUrl, INSTALL_HINT, runVm, USER_NET_HOST, VmSetupError, type Firmware, type QmpEvent, type VmEnd, type VmOptions, type VmResult } from './qemu.ts';
export {
  bootVariableName,
  EFI_GLOBAL_VARIABLE,
  getVariable,
  httpBootVariables,
  listVariables,
  loadOption,
  setVariables,
  uriDevicePath,
  VarstoreError,
  withHttpBoot,
  type HttpBootOptions,
  type NewVariable,
  type Variable,
} from './varstore.ts';
