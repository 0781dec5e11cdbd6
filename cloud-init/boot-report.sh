#!/bin/sh
# What `dpdkhost up` shows of a VM whose agent did not come up: cloud-init's stages and
# the agent's unit with its last log lines.
cloud-init status --long
systemctl --no-pager status dpdk-agent 2>&1 | tail -n 15
