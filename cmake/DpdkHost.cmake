# DpdkHost.cmake: the old lab's CMake targets, each running dpdkhost.
#
#   list(APPEND CMAKE_MODULE_PATH /path/to/dpdkhost/cmake)
#   include(DpdkHost)
#
# Targets: local_vm_image, local_vm_init, local_vm_plan, local_vm_deploy,
# local_vm_destroy, local_vm_outputs, local_vm_ssh1, local_vm_ssh2, local_vm_test,
# local_vm_full. local_vm_deploy and local_vm_outputs write
# ${CMAKE_BINARY_DIR}/local-deployment-outputs.json, as `terraform output -json` did.
# Cache variables: DPDKHOST_BIN (the dpdkhost binary), DPDKHOST_ENV (the lab),
# DPDKHOST_CONFIG (a dpdkhost.toml, optional), DPDKHOST_UP_ARGS (more arguments of `up`,
# a list, e.g. --no-kvm), DPDKHOST_ANSIBLE_DIR (the playbooks).

include_guard(GLOBAL)

find_program(DPDKHOST_BIN dpdkhost DOC "The dpdkhost binary")
set(DPDKHOST_ENV "default" CACHE STRING "The dpdkhost environment (lab) the targets act on")
set(DPDKHOST_CONFIG "" CACHE FILEPATH "A dpdkhost.toml (empty: dpdkhost's own lookup)")
set(DPDKHOST_UP_ARGS "" CACHE STRING "More arguments of `up` for local_vm_deploy and local_vm_full (a list, e.g. --no-kvm)")
set(DPDKHOST_ANSIBLE_DIR "${CMAKE_CURRENT_LIST_DIR}/../examples/ansible"
    CACHE PATH "The Ansible playbooks and run_tests.sh that local_vm_test runs")
set(DPDKHOST_OUTPUTS "${CMAKE_BINARY_DIR}/local-deployment-outputs.json")

if(NOT DPDKHOST_BIN)
  message(FATAL_ERROR "DpdkHost: no dpdkhost binary; set DPDKHOST_BIN (cargo build --release -p dpdkhost)")
endif()

set(_dpdkhost ${DPDKHOST_BIN} --env ${DPDKHOST_ENV})
if(DPDKHOST_CONFIG)
  list(APPEND _dpdkhost --config ${DPDKHOST_CONFIG})
endif()
# `outputs --json` into the build tree through a temporary file, so a failed command
# leaves no half-written outputs file.
set(_dpdkhost_outputs
    COMMAND ${_dpdkhost} outputs --json > ${DPDKHOST_OUTPUTS}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${DPDKHOST_OUTPUTS}.tmp ${DPDKHOST_OUTPUTS})

add_custom_target(local_vm_image COMMAND ${_dpdkhost} image build
  USES_TERMINAL COMMENT "dpdkhost: build the guest image")
add_custom_target(local_vm_init COMMAND ${_dpdkhost} doctor
  USES_TERMINAL COMMENT "dpdkhost: check this machine")
add_custom_target(local_vm_plan COMMAND ${_dpdkhost} plan
  USES_TERMINAL COMMENT "dpdkhost: what up would do")
add_custom_target(local_vm_deploy COMMAND ${_dpdkhost} up -y ${DPDKHOST_UP_ARGS} ${_dpdkhost_outputs}
  USES_TERMINAL COMMENT "dpdkhost: up, outputs into ${DPDKHOST_OUTPUTS}")
add_custom_target(local_vm_destroy COMMAND ${_dpdkhost} down -y
  USES_TERMINAL COMMENT "dpdkhost: down")
add_custom_target(local_vm_outputs ${_dpdkhost_outputs}
  COMMAND ${CMAKE_COMMAND} -E cat ${DPDKHOST_OUTPUTS}
  USES_TERMINAL COMMENT "dpdkhost: outputs into ${DPDKHOST_OUTPUTS}")
add_custom_target(local_vm_ssh1 COMMAND ${_dpdkhost} ssh 1
  USES_TERMINAL COMMENT "dpdkhost: ssh to vm1")
add_custom_target(local_vm_ssh2 COMMAND ${_dpdkhost} ssh 2
  USES_TERMINAL COMMENT "dpdkhost: ssh to vm2")
add_custom_target(local_vm_test
  COMMAND ${CMAKE_COMMAND} -E env DPDKHOST=${DPDKHOST_BIN} DPDKHOST_ENV=${DPDKHOST_ENV}
          ${DPDKHOST_ANSIBLE_DIR}/run_tests.sh --local hello_world.yml test_connectivity.yml
  USES_TERMINAL COMMENT "dpdkhost: the Ansible tests against the lab")
add_custom_target(local_vm_full
  COMMAND ${_dpdkhost} up -y ${DPDKHOST_UP_ARGS} ${_dpdkhost_outputs}
  COMMAND ${CMAKE_COMMAND} -E env DPDKHOST=${DPDKHOST_BIN} DPDKHOST_ENV=${DPDKHOST_ENV}
          ${DPDKHOST_ANSIBLE_DIR}/run_tests.sh --local hello_world.yml test_connectivity.yml
  USES_TERMINAL COMMENT "dpdkhost: deploy, then the Ansible tests")
