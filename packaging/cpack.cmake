# The Debian package: `cpack -G DEB` in a build tree (scripts/package.sh).
# Holds /usr/bin/vigie (from the top-level install(TARGETS)), the systemd unit, the
# example configuration as /etc/vigie/vigie.yaml, /etc/default/vigie and the man page.
# Dependencies are the shared libraries the binary links, found by dpkg-shlibdeps.
# /etc and /lib paths are absolute: this is laid out for Debian, whatever the prefix.

install(FILES ${CMAKE_CURRENT_LIST_DIR}/systemd/vigie.service
        DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/kubernetes/base/vigie.yaml
        DESTINATION /etc/vigie)
# Secrets may go here: root only.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/vigie.default
        DESTINATION /etc/default RENAME vigie
        PERMISSIONS OWNER_READ OWNER_WRITE)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/vigie.1 DESTINATION share/man/man1)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME vigie)
set(CPACK_PACKAGE_VENDOR "vigie")
set(CPACK_PACKAGE_CONTACT "vigie maintainers <vigie@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "health-check aggregator exporting Prometheus metrics and a JSON API")
set(CPACK_PACKAGE_DESCRIPTION
    "vigie polls services' health pages, databases, disks and public URLs on one \
asynchronous loop, applies thresholds, aggregates services, groups and clusters, and \
serves Prometheus metrics, a JSON API, a status page and HAProxy agent checks.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ca-certificates")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
# conffiles: local edits survive upgrades (dpkg asks before replacing them). The
# maintainer scripts only reload systemd and restart a running vigie on upgrade.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_LIST_DIR}/deb/conffiles
    ${CMAKE_CURRENT_LIST_DIR}/deb/postinst ${CMAKE_CURRENT_LIST_DIR}/deb/prerm
    ${CMAKE_CURRENT_LIST_DIR}/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_OUTPUT_FILE_PREFIX ${CMAKE_BINARY_DIR})
include(CPack)
